#!/usr/bin/env bash
# Faults in a data-parallel run (`mpirun -np 2 lathe train`):
# - rank 1 is killed (SIGKILL) mid-run: the job ends within 60 s with a non-zero status and a
#   message naming rank 1, the last checkpoint is intact, and `--resume` continues from it;
# - an error on the ranks (a missing data file): each names its rank, and the job ends.
# Usage: mpi_faults.sh LATHE_BINARY SOURCE_DIR
set -u
lathe="$1"
source_dir="$2"
fashion=/usr/share/datasets/fashion-mnist
work=$(mktemp -d)
job=""
cleanup() {
  [ -n "$job" ] && kill -KILL "$job" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
. "$source_dir/tests/lib/fashion_subset.sh"
. "$source_dir/tests/lib/mpi_kill.sh"
fashion_subset 1280 "$work/images" "$work/labels"
fail() {
  echo "FAIL: $*"
  echo "--- job output:"
  cat "$work/job.log" 2>/dev/null
  exit 1
}
mpi=(mpirun --allow-run-as-root --oversubscribe)
config=(train "$source_dir/examples/fashion_mlp/config.toml" --set trainer.log_every=0
  --set trainer.progress=never --set "trainer.output_dir=$work/run"
  --set "data.train_images=$work/images" --set "data.train_labels=$work/labels"
  --set "data.test_images=$work/images" --set "data.test_labels=$work/labels")

# ---- A rank is killed ----
# Far more epochs than it will live for; each epoch writes a checkpoint.
"${mpi[@]}" -np 2 "$lathe" "${config[@]}" --set trainer.epochs=1000000 >"$work/job.log" 2>&1 &
job=$!
for _ in $(seq 1 3000); do
  [ -f "$work/run/checkpoint.safetensors" ] && break
  kill -0 "$job" 2>/dev/null || fail "the job ended before its first checkpoint"
  sleep 0.1
done
[ -f "$work/run/checkpoint.safetensors" ] || fail "no checkpoint after 300 s"
sleep 1  # a few more epochs, so the kill lands mid-epoch or mid-write
kill_rank_1 "$job" || fail "rank 1's process not found"
job=""
status="$kill_status"
seconds="$kill_seconds"
[ -n "$status" ] || fail "the job still runs 60 s after rank 1 was killed"
[ "$status" -ne 0 ] || fail "the job exited 0 after rank 1 was killed"
grep -q "rank 1" "$work/job.log" || fail "no message names rank 1"
echo "ok   rank 1 killed: the job ended in ${seconds} s with status $status: $(grep -m1 'rank 1' "$work/job.log")"

# The checkpoint is intact: one process resumes from it and trains two more epochs.
epochs=$(($(wc -l <"$work/run/metrics.jsonl") + 2))
"$lathe" "${config[@]}" --set "trainer.epochs=$epochs" --resume >"$work/job.log" 2>&1 ||
  fail "--resume after the kill failed"
grep -q "^Resumed from .*checkpoint.safetensors after epoch" "$work/job.log" ||
  fail "no 'Resumed from' line"
grep -q "^Saved model bundle" "$work/job.log" || fail "the resumed run saved no bundle"
echo "ok   $(grep '^Resumed from' "$work/job.log"), trained to epoch $((epochs - 1))"

# ---- An error on the ranks ----
timeout 60 "${mpi[@]}" -np 2 "$lathe" "${config[@]}" --set "data.train_images=$work/absent" \
  >"$work/job.log" 2>&1
status=$?
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || fail "a missing data file: status $status"
grep -Eq "lathe: error: rank [01] of 2: .*absent.*cannot open" "$work/job.log" ||
  fail "the error does not name the rank and the file"
echo "ok   missing data file: $(grep -m1 'lathe: error: rank' "$work/job.log")"
