#!/usr/bin/env bash
# Data-parallel training is the same training: on 1,280 Fashion-MNIST images (19 steps per
# epoch, the last batch uneven), `mpirun -np 2` and `-np 3` with global batch 64 end with the
# weights of one process with batch 64 after 2 epochs, and a run resumed with a different number
# of processes ends where an uninterrupted one does.
#
# Tolerance 1e-4 on every weight. The runs differ only in the order float32 sums the gradient:
# each rank's batch mean, weighted by its share of rows, then summed across ranks, against one
# GEMM over all rows: a few ulps per step (measured: about 1e-6 after 38 Adam steps, with weights
# up to 0.15). A real defect (a shard dropped or counted twice, a wrong weight, a stale gradient)
# moves weights by about a step, lr = 1e-3; the negative control below (batch 32 instead of 64)
# must exceed the tolerance, so the comparison can fail.
# Usage: mpi_equivalence.sh LATHE_BINARY SOURCE_DIR
set -u
lathe="$1"
source_dir="$2"
fashion=/usr/share/datasets/fashion-mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$source_dir/tests/lib/fashion_subset.sh"
fashion_subset 1280 "$work/images" "$work/labels"
failures=0

# train NP DIR [ARGS...]
train() {
  local np="$1" dir="$2"
  shift 2
  mpirun --allow-run-as-root --oversubscribe -np "$np" "$lathe" train \
    "$source_dir/examples/fashion_mlp/config.toml" --set trainer.log_every=0 \
    --set trainer.progress=never --set "trainer.output_dir=$work/$dir" \
    --set "data.train_images=$work/images" --set "data.train_labels=$work/labels" \
    --set "data.test_images=$work/images" --set "data.test_labels=$work/labels" "$@" \
    >"$work/$dir.log" 2>&1 || { echo "FAIL: training $dir:"; cat "$work/$dir.log"; exit 1; }
}
# same NAME A B: the bundles' weights agree within the tolerance.
same() {
  echo -n "$1: "
  python3 "$source_dir/tests/compare_weights.py" "$work/$2/model.safetensors" \
    "$work/$3/model.safetensors" 1e-4 || { echo "FAIL: $1"; failures=$((failures + 1)); }
}

train 1 np1 --set trainer.epochs=2
train 2 np2 --set trainer.epochs=2 --set trainer.progress=auto
train 3 np3 --set trainer.epochs=2
grep -q "^Distributed: 2 processes" "$work/np2.log" || { echo "FAIL: np2 did not run distributed"; failures=$((failures + 1)); }
# A rank's stdout is a terminal of mpirun's making even though np2's log is a file: "auto" must
# draw no progress bar into it.
if grep -q $'\e' "$work/np2.log"; then
  echo "FAIL: terminal escapes in the log of a run under mpirun"
  failures=$((failures + 1))
fi
same "2 processes vs 1" np1 np2
same "3 processes vs 1" np1 np3

# Resume with another process count: 2 processes for epoch 0, then 1 (and the reverse, with 3).
train 2 np2then1 --set trainer.epochs=1
train 1 np2then1 --set trainer.epochs=2 --resume
train 1 np1then3 --set trainer.epochs=1
train 3 np1then3 --set trainer.epochs=2 --resume
grep -q "Resumed from" "$work/np2then1.log" || { echo "FAIL: no 'Resumed from' line"; failures=$((failures + 1)); }
same "resumed 2 -> 1 process vs 1" np1 np2then1
same "resumed 1 -> 3 processes vs 1" np1 np1then3

# Negative control: a different batch size is different training, and the check must see it.
train 1 batch32 --set trainer.epochs=2 --set trainer.batch_size=32
echo -n "negative control, batch 32 vs 64 (must differ): "
if python3 "$source_dir/tests/compare_weights.py" "$work/np1/model.safetensors" \
  "$work/batch32/model.safetensors" 1e-4; then
  echo "FAIL: the comparison does not tell batch 32 from batch 64"
  failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "data-parallel training matches one process"
