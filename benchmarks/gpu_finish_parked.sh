#!/usr/bin/env bash
# Continue the parked benchmark cells (benchmarks/parked, see park_runs.py) on a lent GPU machine in one call,
# and bring them back: the cells still unfinished as parked archives, the finished ones as their small files.
# Each parked cell trains in its own process for LIMIT seconds on DEVICE, from its newest checkpoint.
# Here, before the call: stop the local lanes and park them (park_runs.py park ...), so that the GPU continues
# the newest state and no cell trains in two places; the benchmark file must travel (../shared does not):
#   mkdir -p .device/data && cp ../shared/data/Beauty.txt .device/data/ && echo /.device/ >> .git/info/exclude
# The call: run(command="OUT=$OUT LIMIT=420 bash benchmarks/gpu_finish_parked.sh", carry=[".device"],
#   timeout_s=540); then, here, with the returned files in FILES (files_at):
#   cp FILES/*__*.tar.gz benchmarks/parked/ && tar xzf FILES/finished.tar.gz -C benchmarks/runs/baselines
#   bash benchmarks/finish_beauty.sh   (restores the newer parked checkpoints, records the finished cells)
# Test it on the CPU with DEVICE=cpu LIMIT=60 OUT=/tmp/out DATA=../shared/data PYTHON=.venv/bin/python.
set -u
DATA=${DATA:-.device/data}
DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-420}
OUT=${OUT:-/tmp/out}
PYTHON=${PYTHON:-python3}
RUNS=${RUNS:-runs/parked}
PARKED=${PARKED:-benchmarks/parked}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# benchmark-format files never touch Polars; an empty stand-in lets the package import where it is missing
$PYTHON -c "import polars" 2>/dev/null || { mkdir -p /tmp/stub/polars; touch /tmp/stub/polars/__init__.py; export PYTHONPATH=$PYTHONPATH:/tmp/stub; }
mkdir -p "$OUT"
{ nvidia-smi -L; $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } > "$OUT/device.txt" 2>&1
$PYTHON benchmarks/park_runs.py restore "$PARKED" $RUNS > "$OUT/train.log" 2>&1
for archive in "$PARKED"/*.tar.gz; do
  name=$(basename "$archive" .tar.gz)
  IFS=/ read -r dataset model protocol seed <<< "${name//__//}"
  [ "$protocol" = paper ] || { echo "$archive: only paper-protocol cells are continued here" >> "$OUT/train.log"; continue; }
  timeout "$LIMIT" $PYTHON -m bsarec benchmark --data-dir "$DATA" --device "$DEVICE" --threads 1 --runs $RUNS \
    --output "/tmp/grid-$model-$seed" -d "$dataset" -m "$model" --seeds "${seed#seed}" --set checkpoint_steps=100 \
    >> "$OUT/train.log" 2>&1 &
done
wait
$PYTHON benchmarks/park_runs.py park $RUNS "$OUT" >> "$OUT/train.log" 2>&1
finished=$(cd $RUNS && find . -name metrics.json -printf '%h\n')
if [ -n "$finished" ]; then
  (cd $RUNS && tar czf "$OUT/finished.tar.gz" $(for d in $finished; do ls -d $d/config.json $d/metrics.json $d/history.jsonl $d/train.log; done))
fi
tail -n 20 "$OUT/train.log"
ls -la "$OUT"
