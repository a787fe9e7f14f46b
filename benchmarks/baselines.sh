#!/usr/bin/env bash
# Issue 3's CPU benchmarks on LastFM, resumable: finished cells are skipped and a cell cut off midway continues
# from its checkpoint. Seed by seed, so that partial results cover every model; two cells at a time with one
# thread each (on 2 cores this gives more throughput than one cell with two threads). Some cells were trained
# on a lent H100 (benchmarks/gpu_grid.sh) and copied into the same run tree; each results row says its device.
set -u
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
RUNS=benchmarks/runs/baselines
ALL=bsarec,caser,gru4rec,sasrec,bert4rec,fmlprec,duorec,fearec
grid() { $BIN/bsarec benchmark -d LastFM --data-dir "$DATA" --jobs 2 --threads 1 "$@"; }
summary() { grid -m $ALL --seeds 42,43,44 --runs $RUNS --output benchmarks/results/baselines/LastFM --summary-only > /dev/null; }

grid -m sasrec,fmlprec,gru4rec,bert4rec --seeds 42 --runs $RUNS --output /tmp/bsarec-grid; summary
grid -m bsarec --set padding=cyclic --seeds 42,43,44 --runs benchmarks/runs/padding --output benchmarks/results/padding
for seed in 43 44; do
  grid -m sasrec,fmlprec,gru4rec,bert4rec --seeds $seed --runs $RUNS --output /tmp/bsarec-grid; summary
done
grid -m duorec,caser,fearec --seeds 42,43,44 --runs $RUNS --output /tmp/bsarec-grid; summary
