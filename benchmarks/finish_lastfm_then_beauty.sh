#!/usr/bin/env bash
# The remaining cells of issues 3 and 5, one at a time with one thread (benchmarks/studies.sh runs its LastFM
# lanes beside it): first the unfinished LastFM baseline cells (resumed from their checkpoints), which complete
# the LastFM table; then BSARec's c on Beauty (issue 5, benchmarks/studies_beauty_c.sh); then the Beauty seeds
# of FMLPRec, SASRec and BSARec, cheapest first. Resumable: re-run it and finished cells are skipped.
set -u
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
RUNS=benchmarks/runs/baselines
cell() { $BIN/bsarec benchmark --data-dir "$DATA" --jobs 1 --threads 1 --runs $RUNS --output /tmp/bsarec-grid "$@"; }
cell -d LastFM -m caser,fearec --seeds 42,43,44
cell -d LastFM -m duorec --seeds 44
bash benchmarks/studies_beauty_c.sh
cell -d Beauty -m fmlprec --seeds 42,43,44
cell -d Beauty -m sasrec --seeds 43,44
cell -d Beauty -m bsarec --seeds 44
