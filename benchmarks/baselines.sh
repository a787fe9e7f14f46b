#!/usr/bin/env bash
# Issue 3's CPU benchmarks, resumable (finished cells are skipped). Cheap cells first so that partial results
# are complete per model; two cells at a time with one thread each (on 2 cores this gives more throughput
# than one cell with two threads). Some cells were trained on a lent H100 (benchmarks/gpu_grid.sh) and copied
# into the same run tree; each row of the results says its device.
set -eu
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
RUNS=benchmarks/runs/baselines
common="--data-dir $DATA --jobs 2 --threads 1 --seeds 42,43,44"
$BIN/bsarec benchmark -d LastFM -m bsarec,caser,gru4rec,sasrec,bert4rec,fmlprec,duorec,fearec --runs $RUNS \
  --output benchmarks/results/baselines/LastFM $common --summary-only
for models in sasrec,fmlprec,gru4rec,bert4rec,duorec bsarec,caser,gru4rec,sasrec,bert4rec,fmlprec,duorec,fearec; do
  if [ "$models" = "bsarec,caser,gru4rec,sasrec,bert4rec,fmlprec,duorec,fearec" ]; then
    # the zero-vs-cyclic padding study runs before the two long FEARec cells
    $BIN/bsarec benchmark -d LastFM -m bsarec --set padding=cyclic --runs benchmarks/runs/padding \
      --output benchmarks/results/padding $common
  fi
  $BIN/bsarec benchmark -d LastFM -m $models --runs $RUNS --output benchmarks/results/baselines/LastFM $common
done
