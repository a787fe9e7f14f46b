"""Item cold start on a dataset: test metrics on the users whose target was withheld from training
(`--set cold_items=0.1`), for BSARec with ids only, features only, and ids + features, against popularity.

    python benchmarks/cold_start.py [--dataset Beauty] [--data-dir ../shared/data]

Reads the three grids of `bash benchmarks/grids.sh cold-start-beauty` (benchmarks/results/cold_start/DATASET/*),
computes popularity (training-target counts) on the same split, and writes
benchmarks/results/cold_start_DATASET.md. Cold targets are items no training input or target holds; only their
features (the dataset's S3-Rec attributes) can bring them up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bsarec.api import SequentialRecommender
from bsarec.config import RunConfig
from bsarec.data.registry import resolve_dataset
from bsarec.evaluation.popularity import Popularity
from bsarec.io import atomic_write_text

RESULTS = Path("benchmarks/results")
VARIANTS = {
    "ids only": "ids",
    "features only": "features_only",
    "ids + features": "ids_features",
    "ids + features, id dropout 0.5": "ids_features_id_dropout",
}
SHOWN = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")


def mean(runs: list[dict], group: str, metric: str) -> float:
    return statistics.fmean(r[group][metric] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42, help="popularity's seed when no run has finished")
    args = parser.parse_args()
    data = resolve_dataset(args.dataset, args.data_dir)
    rows: dict[str, list[dict]] = {}
    seeds: set[int] = set()
    for label, folder in VARIANTS.items():
        path = RESULTS / "cold_start" / args.dataset / folder / "results.json"
        if path.is_file():
            finished = [r for r in json.loads(path.read_text())["per_seed"] if "cold_users" in r]
            seeds |= {r["seed"] for r in finished}
            rows[label] = [
                {
                    g: {k[len(g) + 1 :]: v for k, v in r.items() if k.startswith(f"{g}_")}
                    for g in ("warm", "cold")
                }
                for r in finished
            ]
    popularity = []
    for seed in sorted(seeds) or [args.seed]:  # each seed withholds its own items: popularity on each split
        rec = SequentialRecommender(config=RunConfig(model="bsarec", cold_items=args.share, seed=seed))
        rec.dataset = data
        rec.model = Popularity(rec.split)
        popularity.append(rec.test_by_item_group())
    rows = {"popularity": popularity, **rows}
    lines = [
        f"# Item cold start on {args.dataset}: {args.share:.0%} of the items withheld from training",
        "",
        f"`python benchmarks/cold_start.py --dataset {args.dataset}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "Test metrics of the users whose target is cold (withheld) and of those whose target is warm; mean over "
        "the finished seeds (n; each seed withholds its own items). BSARec with the paper preset; features: the "
        "S3-Rec attributes.",
        "",
        "| model | n | "
        + " | ".join(f"cold {m}" for m in SHOWN)
        + " | "
        + " | ".join(f"warm {m}" for m in SHOWN[:2])
        + " | cold users (mean) |",
        "|---|---:|" + "---:|" * (len(SHOWN) + 3),
    ]
    for label, runs in rows.items():
        if not runs:
            continue
        cells = [f"{mean(runs, 'cold', m):.4f}" for m in SHOWN] + [
            f"{mean(runs, 'warm', m):.4f}" for m in SHOWN[:2]
        ]
        users = statistics.fmean(r["cold"]["users"] for r in runs)
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + f" | {users:.0f} |")
    out = RESULTS / f"cold_start_{args.dataset}.md"
    atomic_write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
