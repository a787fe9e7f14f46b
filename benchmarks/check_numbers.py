"""Refactor guard: every model trained for one epoch on LastFM with the paper preset and seed 1 must give
exactly the test HR@10 / NDCG@10 recorded in benchmarks/results/numbers_lastfm_1epoch.json.

This is the command `bsarec train --model M --dataset LastFM --data-dir DIR --preset paper --epochs 1 --seed 1
--set precision=fp32` for each model, run through the Python API with the default thread count: fp32, the
papers' arithmetic, whatever the default precision is. A change that is meant to be a pure
refactor must leave these numbers bit for bit. Runtime: about 5 minutes on 2 CPU cores. Writes what it found,
with the command, date and machine, to benchmarks/results/check_numbers.md.

    python benchmarks/check_numbers.py --data-dir ../shared/data            # compare; exit 1 on a difference
    python benchmarks/check_numbers.py --data-dir ../shared/data --models bsarec,sasrec
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bsarec import SequentialRecommender, resolve_dataset
from bsarec.config import resolve_config
from bsarec.environment import provenance
from bsarec.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"
EXPECTED = RESULTS / "numbers_lastfm_1epoch.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--models", default=None, help="comma-separated (default: every recorded model)")
    args = parser.parse_args()
    expected = json.loads(EXPECTED.read_text())["test"]
    models = args.models.split(",") if args.models else list(expected)
    data = resolve_dataset("LastFM", args.data_dir)
    where = provenance()
    lines = [
        "# One epoch per model on LastFM against the recorded numbers",
        "",
        f"`{where['command']}` — {where['date']} — {where['machine']}",
        "",
        "| model | test HR@10 | test NDCG@10 | recorded HR@10 | recorded NDCG@10 | |",
        "|---|---|---|---|---|---|",
    ]
    failures = 0
    for model in models:
        config = resolve_config(
            model,
            "LastFM",
            "LastFM",
            "paper",
            {"precision": "fp32"},
            seed=1,
            epochs=1,
            data_dir=args.data_dir,
        )
        with tempfile.TemporaryDirectory() as run_dir:
            rec = SequentialRecommender(config=config).fit(data, run_dir=run_dir, progress=False)
        got, want = rec.metrics["test"], expected[model]
        same = (got["HR@10"], got["NDCG@10"]) == (want["HR@10"], want["NDCG@10"])
        failures += not same
        row = [
            model,
            got["HR@10"],
            got["NDCG@10"],
            want["HR@10"],
            want["NDCG@10"],
            "same" if same else "DIFFERENT",
        ]
        lines.append("| " + " | ".join(map(str, row)) + " |")
        print(lines[-1], flush=True)
    summary = f"{len(models) - failures} of {len(models)} models give the recorded numbers"
    print(summary)
    atomic_write_text(RESULTS / "check_numbers.md", "\n".join([*lines, "", summary]) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
