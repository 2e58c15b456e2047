#!/usr/bin/env bash
# Issue 28, item 8: how time and memory grow with model width, batch size and context length,
# for lathe and PyTorch 1.13 (1 and 2 threads, the faster shown), in one run on this machine:
#   width    60 training steps of the MLP 784-W-W-10, batch 256, W = 128 ... 2048
#   batch    the same at W = 1024, batch 16 ... 1024
#   context  causal attention alone, forward and backward (width 128, 4 heads, batch 12),
#            T = 64 ... 1024
# Memory is how far the peak RSS rose above the RSS before the work (the data set excluded).
# Writes docs/cost_width.svg, docs/cost_batch.svg and docs/cost_context.svg (matplotlib) and
# prints the figures. Needs scripts/setup.sh --torch. About 5 minutes.
#
#   bash bench/cost_curves.sh [OUT_DIR]     (default docs)
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${1:-docs}"
bench=./build/release/bench/mlp_bench
[ -x "$bench" ] || bash scripts/build.sh release >/dev/null
. bench/lib.sh
need_torch
results=$(mktemp)
trap 'rm -f "$results"' EXIT
both() {  # both ARGS...: lathe's mlp_bench, then torch_bench.py at 1 and 2 threads
  "$bench" "$@" >>"$results"
  for threads in 1 2; do /usr/bin/python3 bench/torch_bench.py "$@" --threads "$threads" >>"$results"; done
}
for width in 128 256 512 1024 2048; do both wide_steps --width "$width" --batch 256; done
for batch in 16 64 256 1024; do
  [ "$batch" = 256 ] || both wide_steps --width 1024 --batch "$batch"
done
for context in 64 128 256 512 1024; do both attention --context "$context"; done
/usr/bin/python3 bench/cost_plots.py "$results" "$out_dir"
