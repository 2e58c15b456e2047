#!/usr/bin/env bash
# The Fashion-MNIST bundle that example_fashion_mlp_config trained gives the same predictions
# through `lathe serve` over HTTP as through `lathe predict`, on all 10,000 test images, with
# concurrent requests that the server batches together (tests/serve_compare.py). The ONNX Runtime
# leg of the same comparison is ctest onnx_runtime_fashion.
# Usage: cli_serve_fashion.sh LATHE_BINARY BUNDLE SOURCE_DIR
set -u
lathe="$1"
bundle="$2"
source_dir="$3"
. "$source_dir/scripts/lib/serve.sh"
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
work=$(mktemp -d)
cleanup() {
  kill_lathe_serve
  rm -rf "$work"
}
trap cleanup EXIT

"$lathe" predict "$bundle" "$images" -o "$work/predictions.csv" || { echo "FAIL: predict"; exit 1; }
# Batches wait up to 20 ms for company, so the 8 concurrent clients' rows share batches.
start_lathe_serve "$work" "$lathe" "$bundle" --name fashion --no-watch \
  --max-queue-delay-us 20000 ||
  { echo "FAIL: the server did not start"; exit 1; }
python3 "$source_dir/tests/serve_compare.py" "$server_url" fashion "$images" \
  "$work/predictions.csv"
compared=$?
read -r examples batches < <(curl -s "$server_url/metrics" |
  sed -nE 's/^lathe_inference_(count|exec_count)_total\{model="fashion"\} //p' | paste -sd' ')
echo "the server ran $examples examples in $batches batches (the client sent 625 requests)"
if [ "${batches:-625}" -ge 625 ]; then
  echo "FAIL: no batch mixed rows of different requests"
  compared=1
fi
stop_lathe_serve || { echo "FAIL: the server exited with $?"; cat "$work/err"; exit 1; }
exit "$compared"
