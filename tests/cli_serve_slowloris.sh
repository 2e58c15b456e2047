#!/usr/bin/env bash
# `lathe serve` with 300 clients holding connections open (half stalled inside the request head,
# half trickling a body one byte a second): 20 normal infer requests must each answer within
# 2 s. With a fixed pool of 32 connection threads they waited for a held connection to end,
# which a trickling client never does (bench/serve_slowloris.py; issue 28 item 5).
# Usage: cli_serve_slowloris.sh LATHE_BINARY SOURCE_DIR
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
fail() {
  echo "FAIL: $*"
  echo "--- server stderr:"; tail -20 "$work/err" 2>/dev/null
  exit 1
}

"$lathe" train "$source_dir/examples/house_prices/config.toml" --set trainer.epochs=1 \
  --set "trainer.output_dir=$work/run" >/dev/null || fail "training the bundle"
"$lathe" serve "$work/run/model.safetensors" --threads 8 --max-connections 4 2>"$work/refused" &&
  fail "--max-connections below --threads was accepted"
grep -q "max-connections must be at least --threads" "$work/refused" ||
  fail "unclear refusal: $(cat "$work/refused")"
start_lathe_serve "$work" "$lathe" "$work/run/model.safetensors" --name houses --no-watch ||
  fail "the server did not start"
cat >"$work/body.json" <<'JSON'
{"inputs":[{"name":"input","shape":[1,13],"datatype":"FP32",
  "data":[0.1,18,2.3,0,0.5,6.5,65,4,1,296,15,396,5]}]}
JSON
/usr/bin/python3 "$source_dir/bench/serve_slowloris.py" "$server_url" houses "$work/body.json" \
  --stalled 300 --requests 20 --budget-ms 2000 || fail "normal requests starved by held connections"
stop_lathe_serve || fail "lathe serve did not exit cleanly"
echo "ok   20 requests answered beside 300 held connections"
