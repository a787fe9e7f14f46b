#!/usr/bin/env bash
# Issue 5's studies, resumable (finished cells are skipped, cut-off cells continue from their checkpoints).
# Lanes of one cell at a time with one thread each, so that two lanes keep both cores busy:
#   bash benchmarks/studies.sh beauty         # SASRec on Beauty (the comparison run for oversmoothing and cold start)
#   bash benchmarks/studies.sh lastfm-sweep   # BSARec's c and alpha on LastFM
#   bash benchmarks/studies.sh lastfm-maxlen  # max_len 100 and 200 for BSARec and SASRec on LastFM
#   bash benchmarks/studies_beauty_c.sh       # c on Beauty
# The max_len-50 and (alpha 0.9, c 3) cells are the seed-42 paper-preset runs of benchmarks/baselines.sh.
# Never run two lanes that share cells: two processes would train the same run directory.
set -u
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
RUNS=benchmarks/runs/studies
cell() { $BIN/bsarec benchmark --data-dir "$DATA" --jobs 1 --threads 1 --seeds 42 --runs $RUNS "$@"; }

case "${1:-}" in
  beauty)
    $BIN/bsarec benchmark -d Beauty -m sasrec --data-dir "$DATA" --jobs 1 --threads 1 --seeds 42 \
      --runs benchmarks/runs/baselines --output /tmp/bsarec-beauty-sasrec ;;
  lastfm-sweep)
    # The sensitivity cross through the paper's LastFM optimum (alpha 0.9, c 3): c at alpha 0.9, then
    # alpha at c 3. A full 5 x 9 grid is 45 runs; the cross is 8 new runs and answers where the best c lies.
    for c in 1 5 7 9; do
      cell -d LastFM -m bsarec --set c=$c --output benchmarks/results/studies/c$c
    done
    for alpha in 0.1 0.5 0.3 0.7; do
      cell -d LastFM -m bsarec --set alpha=$alpha --output benchmarks/results/studies/alpha$alpha
    done ;;
  lastfm-maxlen)
    for len in 100 200; do
      cell -d LastFM -m bsarec,sasrec --set max_len=$len --output benchmarks/results/studies/max_len$len
    done ;;
  *)
    echo "usage: bash benchmarks/studies.sh beauty|lastfm-sweep|lastfm-maxlen" >&2; exit 2 ;;
esac
