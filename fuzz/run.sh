#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cpp) of the `asan` preset (clang, ASan + UBSan; the
# build the sanitizer test run uses too) and runs every target for SECONDS each.
#
#   bash fuzz/run.sh            # CI mode: 15 s per target
#   bash fuzz/run.sh 3600       # long mode: an hour per target
#   FUZZ_TARGETS="fuzz_csv" bash fuzz/run.sh 600   # some targets only
#   FUZZ_JOBS=2 bash fuzz/run.sh 3600              # parallel workers per target (-fork)
#   FUZZ_PARALLEL=1 bash fuzz/run.sh               # one target at a time
#
# Targets run side by side, FUZZ_PARALLEL at a time (default: the number of CPUs divided by
# FUZZ_JOBS), so each target still gets SECONDS of a core of its own.
#
# Seeds come from fuzz/corpus/<target>/ and fuzz/regressions/<target>/ (read only; regressions
# are inputs that once found a bug); what the run discovers goes to
# build/fuzz/run/corpus/<target>/ (kept between runs, so long runs build on each other), crash
# inputs to build/fuzz/run/artifacts/, logs to build/fuzz/run/<target>.log. Exits 1 if any
# target finds a crash, sanitizer report, uncaught exception, leak, timeout or out-of-memory.
# See docs/deploy/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
jobs="${FUZZ_JOBS:-1}"
parallel="${FUZZ_PARALLEL:-$(($(nproc) / jobs))}"
[[ "$parallel" -ge 1 ]] || parallel=1

cmake --preset asan >/dev/null
cmake --build --preset asan --target fuzzers

out=build/fuzz/run
mkdir -p "$out/artifacts"
targets="${FUZZ_TARGETS:-$(for f in fuzz/fuzz_*.cpp; do basename "$f" .cpp; done)}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# fuzz_one TARGET: runs one target; its log in $out/TARGET.log, and "ok" or "FINDING" in
# $out/TARGET.result.
fuzz_one() {
  local target="$1"
  local corpus="$out/corpus/$target" seeds="fuzz/corpus/$target" extra=()
  mkdir -p "$corpus" "$seeds"
  local flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192
               -print_final_stats=1 -artifact_prefix="$out/artifacts/$target-")
  [[ -f "fuzz/$target.dict" ]] && flags+=(-dict="fuzz/$target.dict")
  # fuzz/<target>.options: more libFuzzer flags, one line (later flags win).
  if [[ -f "fuzz/$target.options" ]]; then
    read -r -a extra < <(grep -v '^#' "fuzz/$target.options" | tr '\n' ' ') || true
    flags+=("${extra[@]}")
  fi
  if [[ "$jobs" -gt 1 ]]; then flags+=(-fork="$jobs" -ignore_crashes=0); fi
  # fuzz/regressions/<target>/: inputs that once found a bug, replayed by every run.
  local dirs=("$corpus" "$seeds")
  [[ -d "fuzz/regressions/$target" ]] && dirs+=("fuzz/regressions/$target")
  if "build/asan/fuzz/$target" "${flags[@]}" "${dirs[@]}" >"$out/$target.log" 2>&1; then
    echo ok >"$out/$target.result"
  else
    echo FINDING >"$out/$target.result"
  fi
}

running=0
for target in $targets; do
  rm -f "$out/$target.result"
  if [[ "$running" -ge "$parallel" ]]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$target" &
  running=$((running + 1))
done
wait

status=0
printf '%-22s %10s %8s %8s %10s  %s\n' target execs exec/s cov features result
for target in $targets; do
  log="$out/$target.log"
  result="$(cat "$out/$target.result" 2>/dev/null || echo FINDING)"
  if [[ "$result" != ok ]]; then
    result="FINDING (see $log)"
    status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
  cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  ft=$( (grep -o 'ft: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  printf '%-22s %10s %8s %8s %10s  %s\n' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "$result"
  if [[ "$result" != ok ]]; then
    (grep -E 'ERROR|SUMMARY|Test unit written|uncaught|invariant|runtime error|error' "$log" ||
      tail -5 "$log") | head -20 || true
  fi
done
exit "$status"
