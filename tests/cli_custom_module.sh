#!/usr/bin/env bash
# A model class of a program's own (examples/custom_module): the program trains it, saves a
# bundle, loads it back and serves it (checking each answer against the model); then the `lathe`
# command reads that bundle through the plugin holding the same registration: inspect, eval,
# predict and serve work, export refuses naming the type, and without the plugin the bundle is
# refused with a message that says how to load it.
# Usage: cli_custom_module.sh LATHE_BINARY PROGRAM PLUGIN SOURCE_DIR
set -u
lathe="$1"
program="$2"
plugin="$3"
source_dir="$4"
. "$source_dir/tests/lib/expect_error.sh"
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

"$program" "$work/run" >"$work/program.log" 2>&1 || { cat "$work/program.log"; exit 1; }
grep -E "Training moon_net in [0-9]+ shard" "$work/program.log" &&
  grep -E "^Test accuracy: (9[0-9]|100)\." "$work/program.log" &&
  grep -E "reloaded predictions differ by at most" "$work/program.log" &&
  grep -E "Served on port [0-9]+: predictions differ by at most" "$work/program.log" ||
  fail "the program: $(cat "$work/program.log")"
bundle="$work/run/model.safetensors"

"$lathe" --plugin "$plugin" inspect "$bundle" >"$work/inspect" &&
  grep -q "^Architecture: *moon_net: inputs 2, hidden 32, classes 2" "$work/inspect" &&
  grep -q "^Parameters: *4354" "$work/inspect" || fail "inspect: $(cat "$work/inspect")"
echo "ok   inspect: $(grep Architecture "$work/inspect")"
"$lathe" --plugin "$plugin" eval "$bundle" "$work/run/test.csv" >"$work/eval" &&
  grep -Eq "^300 examples: Loss = [0-9.]+, Accuracy = (9[0-9]|100)\." "$work/eval" ||
  fail "eval: $(cat "$work/eval")"
echo "ok   eval: $(cat "$work/eval")"
"$lathe" predict "$bundle" "$work/run/test.csv" --plugin "$plugin" --output "$work/preds.csv" &&
  [ "$(wc -l <"$work/preds.csv")" = 301 ] &&
  head -1 "$work/preds.csv" | grep -q "class_name,p_upper,p_lower" || fail "predict"
echo "ok   predict: $(sed -n 2p "$work/preds.csv")"
expect_error "export" "has no ONNX form yet" --plugin "$plugin" export "$bundle" "$work/m.onnx" ||
  failures=$((failures + 1))
expect_error "without the plugin" "unknown layer type 'moon_net'.*--plugin" inspect "$bundle" ||
  failures=$((failures + 1))
expect_error "a plugin that is not there" "plugin $work/absent.so: cannot load" \
  --plugin "$work/absent.so" inspect "$bundle" || failures=$((failures + 1))
# A second copy registers moon_net again: an error naming the copy, not an abort.
cp "$plugin" "$work/copy.so"
expect_error "a type registered twice" \
  "plugin $work/copy.so: register_layer_type: a type named 'moon_net' is already registered" \
  --plugin "$plugin" --plugin "$work/copy.so" inspect "$bundle" || failures=$((failures + 1))

export LATHE_PLUGINS="$plugin"
if start_lathe_serve "$work" "$lathe" "$bundle" --name moons --no-watch; then
  code=$(curl -s -o "$work/body" -w '%{http_code}' "$server_url/v2/models/moons/infer" \
    -H 'Content-Type: application/json' \
    -d '{"inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","data":[0,1,1,-0.5]}]}')
  [ "$code" = 200 ] && grep -q '"class_index","datatype":"INT64","shape":\[2\],"data":\[0,1\]' \
    "$work/body" || fail "serve answered $code: $(cat "$work/body")"
  echo "ok   serve: $(cat "$work/body")"
  stop_lathe_serve || fail "serve did not exit 0"
else
  fail "serve did not start"
fi

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "a module of the program's own goes everywhere a built-in one goes"
