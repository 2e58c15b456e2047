#!/usr/bin/env bash
# README command 1: install the dependencies, build, install `lathe` (command, library, headers,
# CMake package, docs, man page) into /usr/local so it is on PATH, and run the main job: train
# the seed document's classifier (784-128-64-10 MLP, Adam, batch 64, 10 epochs) on Fashion-MNIST,
# save a deployable bundle, and evaluate the saved bundle on the test set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" cmake --install build/release --prefix /usr/local >/dev/null
hash -r
lathe=lathe  # on PATH now: /usr/local/bin/lathe
echo "Installed: $(command -v lathe)"
$lathe --version
$lathe train examples/fashion_mlp/config.toml "$@"
$lathe eval runs/fashion_mlp/model.safetensors \
  /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
  /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
echo "Run directory: runs/fashion_mlp (metrics.jsonl, curves.svg, checkpoint, model bundle)"
