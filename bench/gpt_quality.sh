#!/usr/bin/env bash
# The character GPT's validation loss after ITERS iterations, lathe against torch_gpt.py, seed by
# seed on the same text: examples/gpt_sotu/config.toml (the shape and optimizer of
# ../shared/reference/torch_gpt.py) with data.path set to TEXT, validation loss from 200
# batches at the end only; torch_gpt.py on one thread (its loss does not depend on the count).
# Prints one line per seed and side, then each side's mean and spread.
#
#   bash bench/gpt_quality.sh TEXT [SEEDS] [ITERS]
#
# TEXT is one file (the last 10% validates). SEEDS defaults to 5, ITERS to 2000: about 3 minutes
# per seed here. A second English corpus besides SOTU: Debian's fortunes
# (scripts/setup.sh --torch installs it),
#   cat $(ls /usr/share/games/fortunes/* | grep -v '\.') > fortunes.txt
# (the plain files only: not the .dat indexes or the .u8 links).
set -euo pipefail
cd "$(dirname "$0")/.."
text=$(realpath "$1")
seeds="${2:-5}"
iters="${3:-2000}"
lathe=./build/release/src/lathe
[ -x "$lathe" ] || bash scripts/build.sh release >/dev/null
. bench/lib.sh
need_torch
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for ((seed = 1; seed <= seeds; seed++)); do
  "$lathe" train examples/gpt_sotu/config.toml --set "data.path=$text" \
    --set "trainer.seed=$seed" --set "trainer.iterations=$iters" --set trainer.eval_iters=200 \
    --set "trainer.eval_every=$iters" --set "trainer.output_dir=$work/lathe_$seed" \
    >"$work/lathe_$seed.log" 2>&1
  lathe_loss=$(grep -o 'val loss [0-9.]*' "$work/lathe_$seed.log" | tail -1 | awk '{print $3}')
  echo "lathe seed $seed val_loss $lathe_loss"
  torch_loss=$(/usr/bin/python3 bench/torch_gpt.py --text "$text" --seed "$seed" \
    --iters "$iters" --eval-iters 200 --eval-every "$iters" --threads 1 |
    grep -o 'val_loss=[0-9.]*' | cut -d= -f2)
  echo "torch seed $seed val_loss $torch_loss"
done | tee "$work/losses"

awk '{ sum[$1] += $5; sq[$1] += $5 * $5; n[$1]++ }
  END { for (side in sum) { m = sum[side] / n[side]; v = sq[side] / n[side] - m * m;
          printf "%s mean %.4f spread (std) %.4f over %d seeds\n", side, m, sqrt(v > 0 ? v : 0), n[side] } }' \
  "$work/losses"
