#!/usr/bin/env bash
# The Beauty cells of issue 3 (BSARec, SASRec, FMLPRec, FEARec x seeds 42-44), one thread per process (THREADS=N
# to change). Start it once per cell you want trained at once: `bsarec benchmark` locks the cell it trains, so a
# second copy skips that cell and takes the next one. Resumable across sessions:
# - finished cells are recorded in benchmarks/results/baselines/Beauty/results.json, which the grid writes
#   after every finished cell; they are not trained again even though their run directories are gone;
# - unfinished cells come back from benchmarks/parked (benchmarks/park_runs.py: each cell's newest checkpoint,
#   committed at a session's end) and continue from their checkpoints, written every epoch and every 100
#   batches, so a stopped session loses at most what came after its park.
# Before a session ends: .venv/bin/python benchmarks/park_runs.py park benchmarks/runs/baselines benchmarks/parked
# and commit benchmarks/parked (about 14 MB per unfinished cell).
# All 12 cells finished on 2026-12-01 (docs/results.md); with the committed results.json a run trains nothing
# and rewrites the table. To train the grid again, point --output elsewhere (and --runs at an empty tree). A FEARec
# Beauty cell took 62-77 epochs, median 585 s each with three copies on the two cores. Three copies, one per seed,
# train about as many samples per second in all as two (650 vs 626, measured with an older FEARec loss). A copy
# left training alone can resume with THREADS=2 (a runtime setting; 257 s against 406 s per FEARec epoch).
#   nohup bash benchmarks/finish_beauty.sh >> benchmarks/runs/beauty-lane1.log 2>&1 &   # lane2, lane3: 20 s apart
set -u
# tcmalloc, where installed (apt-get install libtcmalloc-minimal4), trains two lanes 1.12x faster, same computation
# (benchmarks/results/allocator.md)
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[ -e $TCMALLOC ] && export LD_PRELOAD=$TCMALLOC
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
RUNS=benchmarks/runs/baselines
$BIN/python benchmarks/park_runs.py restore benchmarks/parked $RUNS
$BIN/bsarec benchmark --data-dir "$DATA" --jobs 1 --threads "${THREADS:-1}" --runs $RUNS --output benchmarks/results/baselines/Beauty \
  --set checkpoint_steps=100 -d Beauty -m bsarec,sasrec,fmlprec,fearec --seeds 42,43,44
