#!/usr/bin/env bash
# README command 2 (and CI): install, build, and run the whole test suite; a short matmul
# benchmark report; then the same suite under AddressSanitizer + UndefinedBehaviorSanitizer; then
# every libFuzzer target for 20 s (the fuzzers' short CI mode: docs/deploy/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

bash scripts/build.sh release
ctest --preset release

echo "== matmul benchmark (report only; ratios vs OpenBLAS sgemm in this run) =="
./build/release/bench/matmul_bench --rounds 5 --batch-seconds 0.05

bash scripts/build.sh asan
ctest --preset asan

bash fuzz/run.sh 20
