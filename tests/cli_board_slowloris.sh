#!/usr/bin/env bash
# `lathe board` with 100 clients holding connections open (half stalled inside the request head,
# half trickling a body one byte a second): 20 page loads must each answer within 2 s. The board
# answered on a fixed pool of 8 threads before, which any 8 such clients held.
# Usage: cli_board_slowloris.sh LATHE_BINARY SOURCE_DIR
set -u
lathe="$1"
source_dir="$2"
work=$(mktemp -d)
board_pid=""
cleanup() {
  [ -n "$board_pid" ] && kill "$board_pid" 2>/dev/null && wait "$board_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- board output:"; tail -20 "$work/board.log" 2>/dev/null
  exit 1
}

mkdir -p "$work/runs/a"
echo '{"step": 1, "epoch": 0, "train_loss": 1.5}' >"$work/runs/a/metrics.jsonl"
"$lathe" board "$work/runs" --port 0 >"$work/board.log" 2>&1 &
board_pid=$!
for _ in $(seq 100); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/board.log" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || fail "the board printed no address"
/usr/bin/python3 "$source_dir/bench/serve_slowloris.py" "$url" --get /api/runs \
  --stalled 100 --requests 20 --budget-ms 2000 || fail "page loads starved by held connections"
echo "ok   20 page loads answered beside 100 held connections"
