#!/usr/bin/env bash
# The Beauty cells of issue 3 (BSARec, SASRec, FMLPRec, FEARec x seeds 42-44), cheapest first, one thread per
# process. Start it once per free core: `bsarec benchmark` locks the cell it trains, so a second copy of this
# script skips that cell and takes the next one. Resumable: finished cells are skipped, cut-off ones continue
# from their checkpoints. FEARec is last because one Beauty seed takes about 10 hours on one core of the CPU
# machine (about 420 s per epoch).
#   nohup bash benchmarks/finish_beauty.sh >> benchmarks/runs/beauty-lane1.log 2>&1 &
#   nohup bash benchmarks/finish_beauty.sh >> benchmarks/runs/beauty-lane2.log 2>&1 &
set -u
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
RUNS=benchmarks/runs/baselines
cell() { $BIN/bsarec benchmark --data-dir "$DATA" --jobs 1 --threads 1 --runs $RUNS --output "/tmp/bsarec-grid-$$" "$@"; }
cell -d Beauty -m sasrec --seeds 42,43,44
cell -d Beauty -m bsarec --seeds 42,43,44
cell -d Beauty -m fmlprec --seeds 42,43,44
cell -d Beauty -m fearec --seeds 42,43,44
