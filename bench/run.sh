#!/usr/bin/env bash
# The performance harness: every workload in lathe and in PyTorch, alternating, in one run on
# this machine; prints per workload the medians, the ratio, the fraction of the sgemm peak
# measured in the same run, and the peak RSS of each side.
#
#   bash bench/run.sh [REPEATS]     (default 3; needs Debian's python3-torch: scripts/setup.sh --torch)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
bench=./build/release/bench/mlp_bench
[ -x "$bench" ] || bash scripts/build.sh release >/dev/null
/usr/bin/python3 -c 'import torch' 2>/dev/null ||
  { echo "PyTorch is missing: run bash scripts/setup.sh --torch" >&2; exit 1; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT
run() { "$@" >>"$results"; }
for ((r = 0; r < repeats; r++)); do
  run "$bench" sgemm_peak
  for workload in seed_epoch wide_steps infer_batch1 infer_batch1000; do
    run "$bench" "$workload"
    for threads in 1 2; do run /usr/bin/python3 bench/torch_bench.py "$workload" --threads "$threads"; done
  done
done
/usr/bin/python3 bench/report.py "$results"
