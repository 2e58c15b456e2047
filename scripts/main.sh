#!/usr/bin/env bash
# README command 1: install, build, and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
./build/release/src/lathe --version
./build/release/src/lathe demo
