#!/usr/bin/env bash
# Issue 28, item 3: causal attention alone (forward and backward; width 128, 4 heads, batch 12,
# torch_gpt.py's attention) at contexts 64, 256 and 1024: lathe's causal_attention ("default":
# the probabilities kept up to 64 positions, blocks beyond), the form that keeps the [B,H,T,T]
# probabilities at every context ("kept", what lathe ran before) and PyTorch 1.13 at 1 and 2
# threads. Each side runs in its own process, alternating, REPEATS times; medians of the
# milliseconds per iteration and of how far the peak RSS rose above the RSS before the first
# iteration. Needs python3-torch (scripts/setup.sh --torch).
#
#   bash bench/attention_memory.sh [REPEATS]     (default 3; about 2 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
bench=./build/release/bench/mlp_bench
[ -x "$bench" ] || bash scripts/build.sh release >/dev/null
. bench/lib.sh
need_torch
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((r = 0; r < repeats; r++)); do
  for context in 64 256 1024; do
    for form in default kept; do "$bench" attention --context "$context" --form "$form" >>"$results"; done
    for threads in 1 2; do
      /usr/bin/python3 bench/torch_bench.py attention --context "$context" --threads "$threads" >>"$results"
    done
  done
done
/usr/bin/python3 - "$results" <<'PY'
import json, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r['context'], r.get('form') or f"torch t={r['threads']}")].append(r)
med = lambda key, name: statistics.median(r[name] for r in runs[key])
print(f"{'T':>5} {'side':<12} {'ms/iter':>9} {'peak MB':>8}")
for context in (64, 256, 1024):
    for side in ('default', 'kept', 'torch t=1', 'torch t=2'):
        print(f"{context:>5} {side:<12} {med((context, side), 'ms_per_iter'):>9.2f} "
              f"{med((context, side), 'peak_rss_growth_mb'):>8.1f}")
torch_best = lambda c: min(med((c, f'torch t={t}'), 'ms_per_iter') for t in (1, 2))
# At T=64 the default form is the kept form itself (contexts up to one block keep the
# probabilities): "not slower than before" holds by that choice, which the rows record; the two
# timings then differ only by noise and are shown, not judged. Were the default to run blocks
# there, the ratio would be judged.
default_keeps_64 = all(r.get('runs') == 'kept' for r in runs[(64, 'default')])
checks = [
    ('T=64: not slower than before (kept)',
     med((64, 'kept'), 'ms_per_iter') / med((64, 'default'), 'ms_per_iter'),
     None if default_keeps_64 else 0.97, 'x'),
    ('T=1024: peak memory <= 1/4 of before',
     med((1024, 'default'), 'peak_rss_growth_mb') / med((1024, 'kept'), 'peak_rss_growth_mb'), None, 'share'),
    ('T=1024: faster than PyTorch at its best',
     torch_best(1024) / med((1024, 'default'), 'ms_per_iter'), 1.0, 'x'),
]
print("\ntargets, issue 28.3, on these medians:")
for name, value, bar, kind in checks:
    shown = f'{value:.2f}' if kind == 'share' else f'{value:.2f}x'
    if kind == 'x' and bar is None:
        print(f"  {name:<42} {shown:>7}  met: the default runs the kept form at T=64 (timings differ by noise only)")
        continue
    met = value <= 0.25 if kind == 'share' else value >= bar
    print(f"  {name:<42} {shown:>7}  {'met' if met else 'NOT met'}")
PY
