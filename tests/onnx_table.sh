#!/usr/bin/env bash
# ONNX export of models trained on a table (the Palmer penguins): the graph takes one input per
# column and carries the encoding (imputation, missing indicators, one-hot through ONNX-ML's
# OneHotEncoder); onnx.checker accepts it and ONNX Runtime gives the classes `lathe predict` gives
# on the test split (and on every row), probabilities within 1e-4 (lathe standardizes in double,
# the graph in float32).
# Usage: onnx_table.sh LATHE PENGUINS_PROGRAM NODE ONNXRUNTIME_NODE_DIR SOURCE_DIR
set -u
lathe="$1"
penguins_program="$2"
node="$3"
ort="$4"
source_dir="$5"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
penguins="$source_dir/data/deb/usr/lib/R/site-library/palmerpenguins/extdata/penguins.csv"
[ -f "$penguins" ] || { echo "FAIL: $penguins is missing: run scripts/setup.sh"; exit 1; }
fail() {
  echo "FAIL: $*"
  exit 1
}

# The test split's rows, as split_rows gives them for seed 0 (the config's).
"$penguins_program" --split-rows "$(($(wc -l <"$penguins") - 1))" 0 >"$work/split.json" ||
  fail "penguins --split-rows"
/usr/bin/python3 - "$penguins" "$work/split.json" "$work/test.csv" <<'PY' || fail "writing the test split"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
test = json.load(open(sys.argv[2]))["test"]
open(sys.argv[3], "w").write("\n".join([lines[0]] + [lines[1 + r] for r in test]) + "\n")
PY

check() {  # NAME ROWS.csv TRAIN-ARGS...
  local name="$1" rows="$2"
  shift 2
  "$lathe" train "$source_dir/examples/penguins/config.toml" --set trainer.epochs=20 \
    --set "trainer.output_dir=$work/$name" "$@" >"$work/train.log" || fail "$name: training"
  "$lathe" export "$work/$name/model.safetensors" "$work/$name.onnx" >"$work/export.log" ||
    fail "$name: export: $(cat "$work/export.log")"
  grep -q "^  inputs:  island \[N,1\] string, bill_length_mm \[N,1\] float32, " "$work/export.log" ||
    fail "$name: export inputs: $(cat "$work/export.log")"
  /usr/bin/python3 "$source_dir/tools/onnx_check.py" "$work/$name.onnx" \
    --outputs probabilities,logits || fail "$name: onnx.checker"
  "$lathe" predict "$work/$name/model.safetensors" "$rows" --format json >"$work/lathe.json" ||
    fail "$name: lathe predict"
  "$node" "$source_dir/tests/onnx_runtime_table.js" "$ort" "$work/$name.onnx" "$rows" \
    "$work/lathe.json" 1e-4 || fail "$name: ONNX Runtime disagrees with lathe"
  echo "ok   $name"
}
check imputed "$work/test.csv"
check indicators "$penguins" --set 'data.missing_indicator=["bill_length_mm","sex"]' --set data.unknown_category=error \
  --set 'model.layers.0.in=12'
echo "ONNX export of table models: ONNX Runtime agrees"
