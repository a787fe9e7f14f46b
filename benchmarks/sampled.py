"""The paper's sampled evaluation (target + 99 negatives) for BSARec on LastFM, against its published numbers.

    python benchmarks/sampled.py --runs benchmarks/runs/baselines/LastFM/bsarec/paper

Re-evaluates the test targets of finished paper-protocol runs (trained and early-stopped with full ranking)
with 99 negatives per user drawn by popularity and uniformly (never history items or the target; one draw
per run from its seed). Writes benchmarks/results/sampled.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from bsarec.api import SequentialRecommender
from bsarec.environment import provenance
from bsarec.experiments.tables import load_published
from bsarec.io import atomic_write_json, atomic_write_text

SHOWN = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=Path("benchmarks/runs/baselines/LastFM/bsarec/paper"))
    parser.add_argument("--dataset", default="LastFM")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/sampled"))
    args = parser.parse_args()
    run_dirs = sorted(p.parent for p in args.runs.glob("seed*/metrics.json"))
    if not run_dirs:
        sys.exit(f"no finished runs under {args.runs}")
    per_run = {}
    for run_dir in run_dirs:
        rec = SequentialRecommender.load(run_dir)
        per_run[run_dir.name] = {
            kind: rec.evaluate("test", candidates=kind) for kind in ("sampled-popularity", "sampled-uniform")
        }
    published = load_published()["sampled"]["bsarec"].get(args.dataset, {})
    summary = {
        kind: {m: statistics.fmean(r[kind][m] for r in per_run.values()) for m in SHOWN}
        for kind in ("sampled-popularity", "sampled-uniform")
    }
    spread = {
        kind: {
            m: statistics.stdev([r[kind][m] for r in per_run.values()]) if len(per_run) > 1 else 0.0
            for m in SHOWN
        }
        for kind in summary
    }
    meta = provenance()
    atomic_write_json(
        args.results.with_suffix(".json"),
        {"meta": meta, "runs": per_run, "mean": summary, "std": spread, "published": published},
    )
    lines = [
        f"# Sampled evaluation (1 target + 99 negatives), BSARec on {args.dataset}",
        "",
        f"`{meta['command']}` — {meta['date']} — {meta['machine']}",
        "",
        f"Runs: {', '.join(per_run)} (paper protocol, early stopping with full ranking); mean ± std over them.",
        "",
        "| negatives | " + " | ".join(SHOWN) + " |",
        "|---" * (len(SHOWN) + 1) + "|",
    ]
    for kind in summary:
        cells = [f"{summary[kind][m]:.4f} ± {spread[kind][m]:.4f}" for m in SHOWN]
        lines.append(f"| {kind.removeprefix('sampled-')} | " + " | ".join(cells) + " |")
    lines.append(
        "| published (paper) | "
        + " | ".join(f"{published[m]:.4f}" if m in published else "–" for m in SHOWN)
        + " |"
    )
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
