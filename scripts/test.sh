#!/usr/bin/env bash
# README command 2 (and CI): install, build, and run the whole test suite twice, plus the fuzzers:
#   release build       gcc -O3: library, command, tests, examples, benchmarks
#   release tests       ctest --preset release: every test (-j2)
#   matmul benchmark    a short report (ratios vs OpenBLAS sgemm in this run), not a test
#   sanitizer build     clang, ASan + UBSan (the `asan` preset): library, command, tests and the
#                       libFuzzer targets in one build
#   sanitizer tests     ctest --preset asan: every test but the slow and lint ones (-j2)
#   fuzzing             every libFuzzer target for 15 s, two at a time (fuzz/run.sh's short CI
#                       mode: docs/deploy/fuzzing.md)
# tests/CMakeLists.txt says which test runs where; README.md ("Building by hand") has the times.
# Prints each stage's time at the end, also when a stage fails.
set -euo pipefail
cd "$(dirname "$0")/.."

stage_times=() running="" running_since=0
summary() {
  local status=$?
  echo "== stage times (wall, this run)"
  printf '  %s\n' "${stage_times[@]}"
  if [[ -n "$running" ]]; then
    local took=$((SECONDS - running_since))
    printf '  %-18s %3d:%02d  FAILED\n' "$running" $((took / 60)) $((took % 60))
  fi
  printf '  %-18s %3d:%02d\n' total $((SECONDS / 60)) $((SECONDS % 60))
  return $status
}
trap summary EXIT
# stage NAME COMMAND...: runs COMMAND, noting its wall time.
stage() {
  running="$1" running_since=$SECONDS
  shift
  echo "== $running"
  "$@"
  local took=$((SECONDS - running_since))
  stage_times+=("$(printf '%-18s %3d:%02d' "$running" $((took / 60)) $((took % 60)))")
  running=""
}

stage setup bash scripts/setup.sh
stage "release build" bash scripts/build.sh release
stage "release tests" ctest --preset release
stage "matmul benchmark" ./build/release/bench/matmul_bench --rounds 5 --batch-seconds 0.05
stage "sanitizer build" bash scripts/build.sh asan
stage "sanitizer tests" ctest --preset asan
stage fuzzing bash fuzz/run.sh 15
