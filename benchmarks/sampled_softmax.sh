#!/usr/bin/env bash
# Issue 6: the accuracy cost of sampled softmax on Beauty. BSARec (paper preset, seed 42) with 1000
# popularity-sampled, logQ-corrected negatives per batch, against the full-softmax run of the baselines grid
# (benchmarks/runs/baselines/Beauty/bsarec/paper/seed42). Resumable.
set -u
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
$BIN/bsarec benchmark -d Beauty -m bsarec --data-dir "$DATA" --jobs 1 --threads 1 --seeds 42 \
  --set softmax_negatives=1000 --set softmax_sampler=popularity \
  --runs benchmarks/runs/sampled_softmax --output benchmarks/results/sampled_softmax
