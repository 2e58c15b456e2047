#!/usr/bin/env bash
# `lathe predict` on the 10,000 Fashion-MNIST test images with the bundle that
# example_fashion_mlp_config trained: the argmax of its probabilities must agree with the labels
# exactly as often as `lathe eval` reports (and at least 87.5%), and `lathe inspect` must report
# the MLP's 109386 parameters. The same in int8 (--precision int8), whose accuracy must also stay
# within half a point of float32's.
# Usage: cli_predict_fashion.sh LATHE_BINARY BUNDLE
set -u
lathe="$1"
bundle="$2"
fashion=/usr/share/datasets/fashion-mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

eval_line=$("$lathe" eval "$bundle" "$fashion/t10k-images-idx3-ubyte.gz" \
  "$fashion/t10k-labels-idx1-ubyte.gz") || { echo "FAIL: lathe eval"; exit 1; }
echo "lathe eval: $eval_line"
eval_accuracy=$(sed -nE 's/.*Accuracy = ([0-9.]+)%.*/\1/p' <<<"$eval_line")

start=$(date +%s.%N)
"$lathe" predict "$bundle" "$fashion/t10k-images-idx3-ubyte.gz" >"$work/predictions.csv" ||
  { echo "FAIL: lathe predict"; exit 1; }
seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
gzip -dc "$fashion/t10k-labels-idx1-ubyte.gz" | tail -c +9 | od -An -v -tu1 -w1 |
  tr -d ' ' >"$work/labels"
# Column 2 is class_index; row i + 1 holds example i.
accuracy=$(tail -n +2 "$work/predictions.csv" | cut -d, -f2 | paste -d' ' - "$work/labels" |
  awk '{ n++; if ($1 == $2) right++ } END { if (n != 10000) print "rows:" n; else printf "%.2f", 100 * right / n }')
echo "lathe predict: argmax agrees with the labels on ${accuracy}% of 10000 images (${seconds}s)"
failures=0
# Equal to eval's two decimals; one image of slack, for a near-tie that softmax rounds to a tie.
if ! awk -v a="$accuracy" -v b="$eval_accuracy" 'BEGIN { d = a - b; exit !(d <= 0.01 && d >= -0.01) }'; then
  echo "FAIL: predict accuracy ${accuracy}% differs from eval's ${eval_accuracy}%"
  failures=$((failures + 1))
fi
if ! awk -v a="$accuracy" 'BEGIN { exit !(a + 0 >= 87.5) }'; then
  echo "FAIL: accuracy ${accuracy}% is under 87.5%"
  failures=$((failures + 1))
fi

# The same at --precision int8: eval through the quantized plan, predict agreeing with it.
int8_eval=$("$lathe" eval "$bundle" "$fashion/t10k-images-idx3-ubyte.gz" \
  "$fashion/t10k-labels-idx1-ubyte.gz" --precision int8) || { echo "FAIL: lathe eval int8"; exit 1; }
echo "lathe eval --precision int8: $int8_eval"
int8_eval_accuracy=$(sed -nE 's/.*Accuracy = ([0-9.]+)%.*/\1/p' <<<"$int8_eval")
"$lathe" predict "$bundle" "$fashion/t10k-images-idx3-ubyte.gz" --precision int8 \
  >"$work/int8.csv" || { echo "FAIL: lathe predict int8"; exit 1; }
int8_accuracy=$(tail -n +2 "$work/int8.csv" | cut -d, -f2 | paste -d' ' - "$work/labels" |
  awk '{ n++; if ($1 == $2) right++ } END { if (n != 10000) print "rows:" n; else printf "%.2f", 100 * right / n }')
echo "lathe predict --precision int8: ${int8_accuracy}%"
if ! awk -v a="$int8_accuracy" -v b="$int8_eval_accuracy" 'BEGIN { d = a - b; exit !(d <= 0.01 && d >= -0.01) }'; then
  echo "FAIL: int8 predict accuracy ${int8_accuracy}% differs from int8 eval's ${int8_eval_accuracy}%"
  failures=$((failures + 1))
fi
if ! awk -v a="$int8_eval_accuracy" -v b="$eval_accuracy" 'BEGIN { d = a - b; exit !(a + 0 >= 87.5 && d <= 0.5 && d >= -0.5) }'; then
  echo "FAIL: int8 accuracy ${int8_eval_accuracy}% is under 87.5% or more than 0.5 points from float32's ${eval_accuracy}%"
  failures=$((failures + 1))
fi
if ! "$lathe" inspect "$bundle" | grep -Eq '^Parameters: +109386$'; then
  echo "FAIL: lathe inspect does not print 'Parameters: 109386'"
  failures=$((failures + 1))
fi
exit "$failures"
