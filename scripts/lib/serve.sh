# Shell helpers for scripts that run `lathe serve` (tests/cli_serve*.sh, bench/serve_load.sh).
# Source it; it defines:
#
#   start_lathe_serve DIR LATHE BUNDLE [ARGS...]
#       starts `LATHE serve BUNDLE --port 0 ARGS...` in the background (stdout to DIR/out, stderr
#       to DIR/err) and waits, up to 120 s, for its "listening on http://127.0.0.1:PORT" line and
#       for /v2/health/ready to answer 200. Sets server_pid and server_url. Returns 1 (with the
#       server's stderr on stderr) if the server exits or never becomes ready.
#   stop_lathe_serve
#       SIGTERM, then waits; returns the server's exit status and clears server_pid.
#   kill_lathe_serve
#       SIGKILL if it still runs (for an EXIT trap).

server_pid=""
server_url=""

start_lathe_serve() {
  local dir="$1" lathe="$2" bundle="$3"
  shift 3
  "$lathe" serve "$bundle" --port 0 "$@" >"$dir/out" 2>"$dir/err" &
  server_pid=$!
  server_url=""
  local _
  for _ in $(seq 1 1200); do
    if [ -z "$server_url" ]; then
      server_url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$dir/out" 2>/dev/null | head -1 || true)
    fi
    if [ -n "$server_url" ] &&
      [ "$(curl -s -o /dev/null -w '%{http_code}' "$server_url/v2/health/ready")" = 200 ]; then
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "lathe serve exited before it was ready:" >&2
      cat "$dir/err" >&2
      server_pid=""
      return 1
    fi
    sleep 0.1
  done
  echo "lathe serve was not ready after 120 s (url: '${server_url}')" >&2
  cat "$dir/err" >&2
  return 1
}

stop_lathe_serve() {
  local rc=0
  kill -TERM "$server_pid"
  wait "$server_pid" || rc=$?
  server_pid=""
  return "$rc"
}

kill_lathe_serve() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  server_pid=""
}
