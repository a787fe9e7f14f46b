#!/usr/bin/env bash
# Issue 3's remaining cells, one at a time with one thread (a second lane runs the studies beside it):
# first the unfinished LastFM cells (resumed from their checkpoints), then the Beauty seeds of FMLPRec,
# SASRec and BSARec, cheapest first. Resumable: re-run it and finished cells are skipped.
set -u
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
RUNS=benchmarks/runs/baselines
cell() { $BIN/bsarec benchmark --data-dir "$DATA" --jobs 1 --threads 1 --runs $RUNS --output /tmp/bsarec-grid "$@"; }
cell -d LastFM -m caser,fearec --seeds 42,43,44
cell -d LastFM -m duorec --seeds 44
cell -d Beauty -m fmlprec --seeds 42,43,44
cell -d Beauty -m sasrec --seeds 43,44
cell -d Beauty -m bsarec --seeds 44
