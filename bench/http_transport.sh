#!/usr/bin/env bash
# Issue 28, item 5: how much of `lathe serve`'s time per request is its HTTP transport. Two tiny
# servers answer every POST /infer with the same fixed body (the size of lathe's batch-1 answer),
# so nothing but the transport differs: cpp-httplib as lathe serve runs it (a thread per
# connection) and GNU libmicrohttpd (event-driven: an epoll loop on each of 2 threads). wrk posts
# serve_load.sh's request body (784 pixel values) with its settings (2 threads, 32 connections),
# the two servers alternating, ROUNDS rounds of DURATION each; prints every round, the medians
# and the ratio. Not part of the test suite or bench/run.sh: it measures the choice of server
# library, not lathe.
#
#   bash bench/http_transport.sh [ROUNDS]     (default 5; DURATION=4s)
#
# Builds two small servers with the packages scripts/setup.sh installs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds="${1:-5}"
duration="${DURATION:-4s}"
[ -f /usr/include/microhttpd.h ] ||
  { echo "libmicrohttpd-dev is not installed (bash scripts/setup.sh)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

src="$root/bench/http_transport"
g++ -O2 -std=c++20 -I"$root" "$src/httplib_server.cpp" -o "$work/httplib_server" \
  $(pkg-config --libs cpp-httplib) -lpthread
g++ -O2 -std=c++20 -I"$root" "$src/microhttpd_server.cpp" -o "$work/microhttpd_server" \
  $(pkg-config --libs libmicrohttpd)

# start NAME: runs $work/NAME in the background; sets port_NAME once it listens.
start() {
  "$work/$1" >"$work/$1.out" &
  pids+=($!)
  local _
  for _ in $(seq 1 100); do
    if grep -q '^listening on' "$work/$1.out"; then
      printf -v "port_$1" '%s' "$(awk '{ print $3 }' "$work/$1.out")"
      return 0
    fi
    sleep 0.05
  done
  echo "$1 did not start" >&2
  exit 1
}
start httplib_server
start microhttpd_server

python3 -c '
import json
data = [(i * 37 + 11) % 256 for i in range(784)]
json.dump({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": data}]},
          open("'"$work"'/body.json", "w"))'
export WRK_BODY="$work/body.json"  # what bench/wrk_post.lua posts

measure() {  # PORT DURATION: prints "req/s p99_ms errors"
  wrk -t2 -c32 -d "$2" -s "$root/bench/wrk_post.lua" "http://127.0.0.1:$1/infer" |
    awk '/^RESULT / { print $3, $5, $6 + $7 }'
}
for name in httplib_server microhttpd_server; do
  port_var="port_$name"
  measure "${!port_var}" 1s >/dev/null  # warm up
done

echo "wrk -t2 -c32 -d$duration, a fixed answer to serve_load.sh's batch-1 body; $(nproc) CPUs"
printf '%-7s %-34s %-34s\n' round "cpp-httplib (req/s, p99 ms, errors)" \
  "libmicrohttpd (req/s, p99 ms, errors)"
for ((r = 1; r <= rounds; r++)); do
  a=$(measure "$port_httplib_server" "$duration")
  b=$(measure "$port_microhttpd_server" "$duration")
  printf '%-7s %-34s %-34s\n' "$r" "$a" "$b"
  echo "$a $b" >>"$work/rounds"
done
awk '
  function median(v, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  { a[NR] = $1; b[NR] = $4; errors += $3 + $6 }
  END {
    ma = median(a, NR); mb = median(b, NR)
    printf "median req/s: cpp-httplib %.0f, libmicrohttpd %.0f: %.2fx; %d errors\n", ma, mb, mb / ma, errors
  }' "$work/rounds"
