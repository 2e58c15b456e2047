#!/usr/bin/env bash
# Two builds of lathe on the workloads `lathe train` runs, alternating, in one run on this
# machine: did a change make a workload slower? Each round runs, with the OLD and the NEW
# `lathe` binary (and NEW with one shard, where the default shards the batch):
#   seed:  examples/fashion_mlp, 2 epochs: training seconds per epoch (metrics.jsonl)
#   cnn:   examples/fashion_cnn on the first 3,200 test images, 1 epoch: training seconds
#   gpt:   examples/gpt_sotu, 60 iterations: milliseconds per iteration
# and prints the medians and NEW/OLD. Both binaries must read the same configs.
#
#   bash bench/compare_binaries.sh OLD_LATHE NEW_LATHE [ROUNDS]     (default 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
old="$1"
new="$2"
rounds="${3:-3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fashion=/usr/share/datasets/fashion-mnist
. "$root/tests/lib/fashion_subset.sh"
set +o pipefail  # head ends gzip's pipe early
fashion_subset 3200 "$work/images" "$work/labels"
set -o pipefail

# measure LABEL WORKLOAD BINARY [ARGS...]: appends "LABEL WORKLOAD VALUE" per evaluation span.
measure() {
  local label="$1" workload="$2" binary="$3"
  shift 3
  local config=()
  case "$workload" in
    seed) config=("$root/examples/fashion_mlp/config.toml" --set trainer.epochs=2) ;;
    cnn) config=("$root/examples/fashion_cnn/config.toml" --set trainer.epochs=1
           --set "data.train_images=$work/images" --set "data.train_labels=$work/labels"
           --set "data.test_images=$work/images" --set "data.test_labels=$work/labels") ;;
    gpt) config=("$root/examples/gpt_sotu/config.toml" --set trainer.iterations=60
           --set trainer.eval_every=60 --set trainer.eval_iters=1
           --set schedule.warmup_steps=10) ;;
  esac
  rm -rf "$work/run"
  "$binary" train "${config[@]}" --set trainer.progress=never --set trainer.log_every=0 \
    --set "trainer.output_dir=$work/run" "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  python3 - "$label" "$workload" "$work/run/metrics.jsonl" "$work/log" >>"$work/rows" <<'PY'
import json, re, sys
label, workload, path, log = sys.argv[1:5]
records = [json.loads(line) for line in open(path)]
if workload in ("seed", "cnn"):
    for r in records:
        print(label, workload, r["train_seconds"])
else:
    # The old trainer printed ms/iteration on its Final line; the new one too.
    ms = re.search(r"Final: .*; ([0-9.]+) ms/iteration", open(log).read())
    print(label, workload, float(ms.group(1)) / 1000)
PY
}

for ((r = 0; r < rounds; r++)); do
  for workload in seed cnn gpt; do
    measure old "$workload" "$old"
    measure new "$workload" "$new"
    [ "$workload" = cnn ] || measure new-1-shard "$workload" "$new" --set trainer.shards=1
  done
done
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, workload, value = line.split()
    rows.setdefault((workload, label), []).append(float(value))
units = {"seed": ("s/epoch", 1), "cnn": ("s/epoch", 1), "gpt": ("ms/iteration", 1000)}
print(f"{'workload':10} {'unit':13} {'old':>9} {'new':>9} {'new/old':>8} {'new, 1 shard':>13}")
for workload, (unit, scale) in units.items():
    old = statistics.median(rows[(workload, "old")]) * scale
    new = statistics.median(rows[(workload, "new")]) * scale
    one = rows.get((workload, "new-1-shard"))
    one_text = f"{statistics.median(one) * scale:13.3f}" if one else f"{'(unsharded)':>13}"
    print(f"{workload:10} {unit:13} {old:9.3f} {new:9.3f} {new / old:8.3f} {one_text}")
PY
