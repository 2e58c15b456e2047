#!/usr/bin/env bash
# `lathe serve` as a user runs it: port 0 and the "listening on" line, health and infer with curl,
# a bad request, SIGHUP reloading the bundle, and SIGTERM draining a request in flight before a
# clean exit 0.
# Usage: cli_serve.sh LATHE_BINARY SOURCE_DIR
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
  echo "--- server stdout:"; cat "$work/out" 2>/dev/null
  echo "--- server stderr:"; cat "$work/err" 2>/dev/null
  exit 1
}
# status_of URL [CURL ARGS...]: the HTTP status; the body goes to $work/body.
status_of() {
  local url="$1"
  shift
  curl -s -m 120 -o "$work/body" -w '%{http_code}' "$@" "$url"
}
# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s.
wait_for() {
  local tries=$(($1 * 10))
  shift
  for _ in $(seq 1 "$tries"); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# A small regression bundle (house prices, 13 features), trained for 2 epochs.
"$lathe" train "$source_dir/examples/house_prices/config.toml" --set trainer.epochs=2 \
  --set "trainer.output_dir=$work/run" >/dev/null || fail "training the bundle"
bundle="$work/run/model.safetensors"

# Batches wait up to 1 s for company, so a request is still in flight when SIGTERM arrives.
start_lathe_serve "$work" "$lathe" "$bundle" --name houses --max-queue-delay-us 1000000 \
  --no-watch || fail "the server did not start"
url="$server_url"
grep -q "listening on $url" "$work/out" || fail "no 'listening on $url' line"
echo "ok   listening on $url, ready"
[ "$(status_of "$url/v2/health/live")" = 200 ] || fail "live is not 200"
echo "ok   live"

body='{"id":"q1","inputs":[{"name":"input","shape":[1,13],"datatype":"FP32",
  "data":[0.1,18,2.3,0,0.5,6.5,65,4,1,296,15,396,5]}]}'
code=$(status_of "$url/v2/models/houses/infer" -H 'Content-Type: application/json' -d "$body")
[ "$code" = 200 ] || fail "infer answered $code: $(cat "$work/body")"
grep -q '"model_version":"1"' "$work/body" && grep -q '"id":"q1"' "$work/body" &&
  grep -q '"name":"values","datatype":"FP32","shape":\[1,1\]' "$work/body" ||
  fail "unexpected infer answer: $(cat "$work/body")"
echo "ok   infer: $(cat "$work/body")"

code=$(status_of "$url/v2/models/houses/infer" -d '{"inputs":[{"name":"input","shape":[1,3]}]}')
[ "$code" = 400 ] && grep -q '"error"' "$work/body" || fail "bad request answered $code"
echo "ok   bad request: $(cat "$work/body")"
[ "$(status_of "$url/metrics")" = 200 ] && grep -q 'lathe_inference_count_total{model="houses"} 1' \
  "$work/body" || fail "metrics: $(cat "$work/body")"
echo "ok   metrics"

kill -HUP "$server_pid"
version2() {
  status_of "$url/v2/models/houses" >/dev/null && grep -q '"versions":\["2"\]' "$work/body"
}
wait_for 120 version2 || fail "SIGHUP did not reload the bundle"
grep -q "reload requested" "$work/err" || fail "no reload line in the log"
echo "ok   SIGHUP reloaded: version 2"

# A request in flight when SIGTERM arrives still gets its answer; then exit 0.
status_of "$url/v2/models/houses/infer" -d "$body" >"$work/drained" &
curl_pid=$!
queued() {
  curl -s "$url/metrics" | grep -q 'lathe_inference_queue_depth{model="houses"} 1'
}
wait_for 120 queued || fail "the request never reached the queue"
stop_lathe_serve
rc=$?
wait "$curl_pid"
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
[ "$(cat "$work/drained")" = 200 ] || fail "the request in flight got $(cat "$work/drained")"
grep -q "stopped" "$work/err" || fail "no 'stopped' line"
echo "ok   SIGTERM: the request in flight got 200, exit 0"
