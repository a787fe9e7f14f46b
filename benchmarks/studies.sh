#!/usr/bin/env bash
# Issue 5's studies, resumable (finished cells are skipped, cut-off cells continue from their checkpoints).
# Two chains, one cell each with one thread, so that both cores stay busy:
#   bash benchmarks/studies.sh beauty   # SASRec on Beauty (the comparison run for oversmoothing and cold start)
#   bash benchmarks/studies.sh lastfm   # c and alpha sweeps on LastFM; max_len 100/200 for BSARec and SASRec
# The max_len-50 and (alpha 0.9, c 3) cells are the seed-42 paper-preset runs of benchmarks/baselines.sh.
set -u
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
RUNS=benchmarks/runs/studies
cell() { $BIN/bsarec benchmark --data-dir "$DATA" --jobs 1 --threads 1 --seeds 42 --runs $RUNS "$@"; }

case "${1:-all}" in
  beauty|all)
    $BIN/bsarec benchmark -d Beauty -m sasrec --data-dir "$DATA" --jobs 1 --threads 1 --seeds 42 \
      --runs benchmarks/runs/baselines --output /tmp/bsarec-beauty-sasrec ;;&
  lastfm|all)
    # The sensitivity cross through the paper's LastFM optimum (alpha 0.9, c 3): c at alpha 0.9, then
    # alpha at c 3. A full 5 x 9 grid is 45 runs; the cross is 8 new runs and answers where the best c lies.
    # Ordered so that a cut-off session leaves the most answered: c first, then max_len 100, then the rest.
    for c in 1 5 7 9; do
      cell -d LastFM -m bsarec --set c=$c --output benchmarks/results/studies/c$c
    done
    cell -d LastFM -m bsarec,sasrec --set max_len=100 --output benchmarks/results/studies/max_len100
    for alpha in 0.1 0.5; do
      cell -d LastFM -m bsarec --set alpha=$alpha --output benchmarks/results/studies/alpha$alpha
    done
    cell -d LastFM -m bsarec,sasrec --set max_len=200 --output benchmarks/results/studies/max_len200
    for alpha in 0.3 0.7; do
      cell -d LastFM -m bsarec --set alpha=$alpha --output benchmarks/results/studies/alpha$alpha
    done
    ;;
esac
