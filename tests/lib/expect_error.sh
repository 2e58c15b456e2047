# Sourced by the CLI shell tests. Needs $lathe (the binary) and $work (a scratch folder).
#
# expect_error NAME PATTERN ARGS...: `$lathe ARGS...` must exit 1 and print exactly one stderr
# line, matching the extended regular expression PATTERN. Prints "ok   NAME: <the line>" or
# "FAIL NAME: ..." with what it printed; returns 1 on failure.
expect_error() {
  local name="$1" pattern="$2"
  shift 2
  "$lathe" "$@" >"$work/out" 2>"$work/err"
  local code=$? lines
  lines=$(wc -l <"$work/err")
  if [ "$code" -ne 1 ] || [ "$lines" -ne 1 ] || ! grep -Eq "$pattern" "$work/err"; then
    echo "FAIL $name: exit $code, $lines stderr lines:"
    cat "$work/err"
    return 1
  fi
  echo "ok   $name: $(cat "$work/err")"
}
