#!/usr/bin/env bash
# Data-parallel scaling on this machine: the seed MLP (examples/fashion_mlp, batch 64, Adam)
# trained for EPOCHS epochs as one process with its default threads, as one process with one
# thread, and as `mpirun -np 2` (one thread each), alternating, REPEATS times. Prints the median
# training seconds per epoch of each (validation excluded: lathe logs it separately below) and
# the ratios, plus the gradient bytes each process sends per step.
#
#   bash bench/mpi_scaling.sh [REPEATS] [EPOCHS]     (defaults 3 and 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repeats="${1:-3}"
epochs="${2:-3}"
lathe="${LATHE:-$root/build/release/src/lathe}"
[ -x "$lathe" ] || { echo "no lathe binary at $lathe (bash scripts/build.sh release)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run LABEL COMMAND...: appends "LABEL SECONDS" per epoch, from the run's metrics.jsonl minus
# the validation time printed in its log.
run() {
  local label="$1"
  shift
  "$@" train "$root/examples/fashion_mlp/config.toml" --set "trainer.epochs=$epochs" \
    --set trainer.progress=never --set trainer.log_every=0 \
    --set "trainer.output_dir=$work/run" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  python3 - "$label" "$work/run/metrics.jsonl" >>"$work/rows" <<'PY'
import json, sys
label, path = sys.argv[1:3]
for line in open(path):
    print(label, json.loads(line)["train_seconds"])
PY
}

for ((r = 0; r < repeats; r++)); do
  run "1-process" "$lathe"
  run "1-process-1-thread" env OPENBLAS_NUM_THREADS=1 LATHE_NUM_THREADS=1 "$lathe"
  run "2-processes" mpirun --allow-run-as-root --oversubscribe -np 2 "$lathe"
done
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, seconds = line.split()
    rows.setdefault(label, []).append(float(seconds))
base = statistics.median(rows["1-process"])
print(f"{'run':24} {'s/epoch (median)':>17} {'vs 1 process':>13}")
for label in ("1-process", "1-process-1-thread", "2-processes"):
    m = statistics.median(rows[label])
    print(f"{label:24} {m:17.3f} {base / m:12.2f}x")
params = 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
print(f"gradient per step: {params} floats = {params * 4 / 1024:.1f} KiB summed across processes "
      f"(a ring allreduce sends 2(N-1)/N of it per process: {params * 4 / 1024:.1f} KiB at N=2)")
PY
