#!/usr/bin/env bash
# The Beauty cells of issue 3 (BSARec, SASRec, FMLPRec, FEARec x seeds 42-44), cheapest first, one thread per
# process. Start it once per cell you want trained at once: `bsarec benchmark` locks the cell it trains, so a
# second copy of this script skips that cell and takes the next one. Resumable: finished cells are skipped,
# cut-off ones continue from their checkpoints, written after every epoch and every 100 batches (runtime
# settings do not change what a cell is), so a stopped session loses at most about two minutes per copy.
# FEARec is last because one Beauty seed takes about 10 hours on one core of the CPU machine (about 420 s per
# epoch). For FEARec's three seeds, three copies on two cores finish sooner than two: together they trained
# 614 samples/s here (two copies: 626, with the older, slightly slower FEARec loss), and no core idles while the
# last seed trains alone.
#   nohup bash benchmarks/finish_beauty.sh >> benchmarks/runs/beauty-lane1.log 2>&1 &   # and lane2, lane3
set -u
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
RUNS=benchmarks/runs/baselines
cell() { $BIN/bsarec benchmark --data-dir "$DATA" --jobs 1 --threads 1 --runs $RUNS --output "/tmp/bsarec-grid-$$" \
  --set checkpoint_steps=100 "$@"; }
cell -d Beauty -m sasrec --seeds 42,43,44
cell -d Beauty -m bsarec --seeds 42,43,44
cell -d Beauty -m fmlprec --seeds 42,43,44
cell -d Beauty -m fearec --seeds 42,43,44
