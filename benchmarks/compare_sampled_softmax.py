"""The accuracy cost of sampled softmax on Beauty: one seed, full vs sampled, from two run directories.

    python benchmarks/compare_sampled_softmax.py

Reads the full-softmax run of the baselines grid and the sampled-softmax run of `benchmarks/grids.sh sampled-softmax-beauty`
(BSARec, paper preset, seed 42 both) and writes benchmarks/results/sampled_softmax_beauty.md: test metrics
when the sampled run has finished, and the validation NDCG@20 curve of both at equal epochs (which also
works for a run still in progress).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bsarec.environment import machine_line
from bsarec.io import atomic_write_text
from bsarec.run_dir import RunDir, read_history

METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR")


def load(run: Path) -> tuple[list[dict], dict | None]:
    if not RunDir(run).history_file.is_file():  # the committed output is kept as it is
        sys.exit(
            f"{run}: no run here; train it first (bash benchmarks/grids.sh baselines-beauty or sampled-softmax-beauty)"
        )
    history = read_history(run)
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else None
    return history, metrics


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full", type=Path, default=Path("benchmarks/runs/baselines/Beauty/bsarec/paper/seed42")
    )
    parser.add_argument(
        "--sampled",
        type=Path,
        default=Path(
            "benchmarks/runs/sampled_softmax/Beauty/bsarec/softmax_negatives=1000,softmax_sampler=popularity/seed42"
        ),
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/sampled_softmax_beauty.md"))
    args = parser.parse_args()
    full_history, full = load(args.full)
    sampled_history, sampled = load(args.sampled)
    status = "finished" if sampled else f"in progress ({len(sampled_history)} epochs so far)"
    lines = [
        "# Sampled vs full softmax, BSARec on Beauty (paper preset, seed 42)",
        "",
        f"`python {' '.join(sys.argv)}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} —"
        f" {machine_line()}",
        "",
        "Sampled: 1000 items per batch drawn by training-target popularity (+1), logQ-corrected. Both runs"
        f" early-stop on validation NDCG@20 (patience 10). The sampled run is {status}.",
        "",
    ]
    if full and sampled:
        lines += [
            "| test metric | full softmax | sampled softmax | relative difference |",
            "|---|---|---|---|",
        ]
        for m in METRICS:
            a, b = full["test"][m], sampled["test"][m]
            lines.append(f"| {m} | {a:.4f} | {b:.4f} | {100 * (b - a) / a:+.1f}% |")
        lines += [
            "",
            f"Best epoch: full {full['best_epoch']} of {full['epochs']}, sampled {sampled['best_epoch']} of"
            f" {sampled['epochs']}.",
            "",
        ]
    lines += ["| epoch | valid NDCG@20, full | valid NDCG@20, sampled |", "|---:|---:|---:|"]
    shown = [e for e in range(len(full_history)) if e < 5 or e % 5 == 4 or e == len(full_history) - 1]
    for epoch in shown:
        s = f"{sampled_history[epoch]['valid_NDCG@20']:.4f}" if epoch < len(sampled_history) else ""
        lines.append(f"| {epoch} | {full_history[epoch]['valid_NDCG@20']:.4f} | {s} |")
    best_full = max(r["valid_NDCG@20"] for r in full_history)
    best_sampled = max(r["valid_NDCG@20"] for r in sampled_history)
    lines += ["", f"Best validation NDCG@20: full {best_full:.4f}, sampled {best_sampled:.4f} so far."]
    atomic_write_text(args.output, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
