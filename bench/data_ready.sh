#!/usr/bin/env bash
# Issue 28, item 7: how long the main job's data takes to be ready for the first batch. Runs
# `lathe train examples/fashion_mlp/config.toml` for one epoch RUNS times (a fresh process each)
# and reads the "ready in X s" its Data: line prints (reading the four gzip IDX files, the
# validation split and the preprocessing); prints each, the median and the target (0.3 s).
#
#   bash bench/data_ready.sh [RUNS]     (default 5; about a second each)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
lathe="${LATHE:-./build/release/src/lathe}"
[ -x "$lathe" ] || { echo "no lathe binary at $lathe (bash scripts/build.sh release)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
times=()
for ((r = 0; r < runs; r++)); do
  line=$("$lathe" train examples/fashion_mlp/config.toml --set trainer.epochs=1 \
    --set trainer.log_every=0 --set "trainer.output_dir=$out/run$r" | grep '^Data:')
  seconds=$(sed -nE 's/.*\(ready in ([0-9.]+) s\).*/\1/p' <<<"$line")
  [ -n "$seconds" ] || { echo "no 'ready in' on the Data: line: $line" >&2; exit 1; }
  times+=("$seconds")
done
echo "data ready for the first batch (examples/fashion_mlp, $runs processes): ${times[*]} s"
printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 }
  END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "target, issue 28.7: data ready in <= 0.3 s (median): %.2f s: %s\n", m, m <= 0.3 ? "met" : "NOT met"
  }'
