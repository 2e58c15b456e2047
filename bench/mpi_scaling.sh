#!/usr/bin/env bash
# Data parallelism on this machine, in and across processes, for the seed MLP or the GPT:
#   mlp: examples/fashion_mlp (batch 64, Adam), training seconds per epoch, EPOCHS epochs a run;
#   gpt: examples/gpt_sotu (torch_gpt.py's shape, batch 12), milliseconds per iteration over
#        STEPS iterations a run.
# Each as one process with its default threads and shards (automatic: one per thread for the
# GPT, one for the MLP), one process with
# one shard (the kernels split over the threads instead), one process with one thread, and
# `mpirun -np 2` (one thread each), alternating, REPEATS times. Prints the medians, the ratios
# against the default, and the gradient bytes each process sends per step.
#
#   bash bench/mpi_scaling.sh [REPEATS] [EPOCHS_OR_STEPS] [mlp|gpt]   (defaults 3, 3, mlp)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repeats="${1:-3}"
length="${2:-3}"
model="${3:-mlp}"
lathe="${LATHE:-$root/build/release/src/lathe}"
[ -x "$lathe" ] || { echo "no lathe binary at $lathe (bash scripts/build.sh release)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "$model" in
  mlp) config=("$root/examples/fashion_mlp/config.toml" --set "trainer.epochs=$length") ;;
  gpt) config=("$root/examples/gpt_sotu/config.toml" --set "trainer.iterations=$length"
         --set "trainer.eval_every=$length" --set trainer.eval_iters=1
         --set "schedule.warmup_steps=$((length < 100 ? length : 100))") ;;
  *) echo "model must be mlp or gpt, not $model" >&2; exit 1 ;;
esac

# run LABEL COMMAND... -- EXTRA ARGS: appends "LABEL VALUE" per evaluation span, from the run's
# metrics.jsonl (training time only: evaluations are timed apart).
run() {
  local label="$1"
  shift
  local command=()
  while [ "$1" != "--" ]; do command+=("$1"); shift; done
  shift
  "${command[@]}" train "${config[@]}" --set trainer.progress=never --set trainer.log_every=0 \
    --set "trainer.output_dir=$work/run" "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  python3 - "$label" "$model" "$work/run/metrics.jsonl" >>"$work/rows" <<'PY'
import json, sys
label, model, path = sys.argv[1:4]
previous = 0
for line in open(path):
    r = json.loads(line)
    if r["train_seconds"] == 0:
        continue  # a language model's estimate before the first step
    value = r["train_seconds"] if model == "mlp" else 1000 * r["train_seconds"] / (r["step"] - previous)
    previous = r["step"]
    print(label, value)
PY
}

labels=("1-process" "1-process-1-shard" "1-process-1-thread" "2-processes")
for ((r = 0; r < repeats; r++)); do
  run "1-process" "$lathe" --
  run "1-process-1-shard" "$lathe" -- --set trainer.shards=1
  run "1-process-1-thread" env OPENBLAS_NUM_THREADS=1 LATHE_NUM_THREADS=1 "$lathe" --
  run "2-processes" mpirun --allow-run-as-root --oversubscribe -np 2 "$lathe" --
done
python3 - "$work/rows" "$model" "${labels[@]}" <<'PY'
import statistics, sys
path, model, labels = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = {}
for line in open(path):
    label, value = line.split()
    rows.setdefault(label, []).append(float(value))
unit = "s/epoch" if model == "mlp" else "ms/iteration"
base = statistics.median(rows[labels[0]])
print(f"{'run':24} {unit + ' (median)':>22} {'vs 1 process':>13}")
for label in labels:
    m = statistics.median(rows[label])
    print(f"{label:24} {m:22.3f} {base / m:12.2f}x")
params = (784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10 if model == "mlp" else 814080)
print(f"gradient per step: {params} floats = {params * 4 / 1024:.1f} KiB summed across processes "
      f"(a ring allreduce sends 2(N-1)/N of it per process: {params * 4 / 1024:.1f} KiB at N=2)")
PY
