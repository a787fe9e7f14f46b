#!/usr/bin/env bash
# Issue 5, the Beauty half of "does the best c depend on the dataset": BSARec on Beauty with c 1 and 9 at the
# paper's Beauty alpha (0.7), seed 42, beside the paper-preset cell (c 5) of the baselines grid. With the
# LastFM c sweep (benchmarks/studies.sh) this compares where c peaks on a short-sequence dataset (Beauty,
# mean length 8.9) and a long-sequence one (LastFM, mean length 48). Resumable; about 50-90 min per cell on
# one core of this machine.
set -u
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
for c in 1 9; do
  $BIN/bsarec benchmark -d Beauty -m bsarec --data-dir "$DATA" --jobs 1 --threads 1 --seeds 42 --set c=$c \
    --runs benchmarks/runs/studies --output benchmarks/results/studies/beauty_c$c
done
