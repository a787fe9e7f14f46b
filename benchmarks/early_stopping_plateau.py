"""Did a run stop early because of its device or because of early stopping on a plateau?

    python benchmarks/early_stopping_plateau.py --window 12 \
        benchmarks/runs/baselines/LastFM/fearec/paper/seed{42,43,44} benchmarks/runs/device_check/LastFM/fearec/paper/seed44

Reads each run directory's config.json (model, seed, device) and history.jsonl (per-epoch training loss and
validation metrics) and reports, per run: the device, the epochs run, the best epoch, the range of the monitored
validation metric over the first `window` epochs and the epoch of its maximum there; and, for every pair of runs,
the largest difference of their training losses over those epochs. If the runs' losses agree across devices as
closely as across seeds, the device did not change the optimisation, and a run that stopped early was stopped by
the patience rule. Writes benchmarks/results/early_stopping_plateau.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from bsarec.benchmark import provenance
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.training import read_history
from bsarec.training.helpers import HISTORY_FILE


def read_run(run_dir: Path, monitor: str) -> dict:
    config = json.loads((run_dir / "config.json").read_text())
    history = read_history(run_dir)
    if not history:
        raise SystemExit(f"{run_dir / HISTORY_FILE}: no epochs recorded")
    key = f"valid_{monitor}"
    if key not in history[0]:
        raise SystemExit(f"{run_dir / HISTORY_FILE}: no field {key!r}; fields are {sorted(history[0])}")
    return {
        "run_dir": str(run_dir),
        "model": config["model"],
        "seed": config["seed"],
        "device": config.get("device") or "cpu",
        "loss": [epoch["loss"] for epoch in history],
        "valid": [epoch[key] for epoch in history],
    }


def summarise(run: dict, window: int) -> dict:
    valid, early = run["valid"], run["valid"][:window]
    return {
        "run": run["run_dir"],
        "model": run["model"],
        "seed": run["seed"],
        "device": run["device"],
        "epochs": len(valid),
        "best_epoch": max(range(len(valid)), key=valid.__getitem__),
        "best_valid": max(valid),
        "early_min": min(early),
        "early_max": max(early),
        "early_best_epoch": max(range(len(early)), key=early.__getitem__),
    }


def loss_gaps(runs: list[dict], window: int) -> list[dict]:
    """Largest |loss_a - loss_b| over the epochs both runs reached within the window, for each pair of runs."""
    gaps = []
    for a, b in itertools.combinations(runs, 2):
        shared = min(window, len(a["loss"]), len(b["loss"]))
        gap = max(abs(x - y) for x, y in zip(a["loss"][:shared], b["loss"][:shared], strict=True))
        gaps.append({"a": a["run_dir"], "b": b["run_dir"], "epochs": shared, "max_loss_gap": gap})
    return gaps


def label(run: dict) -> str:
    return f"{run['model']} seed {run['seed']} ({run['device']})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--window", type=int, default=12, help="the first epochs to compare")
    parser.add_argument("--monitor", default="NDCG@20", help="the validation metric early stopping watches")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/early_stopping_plateau"))
    args = parser.parse_args()
    runs = [read_run(d, args.monitor) for d in args.run_dirs]
    rows = [summarise(r, args.window) for r in runs]
    gaps = loss_gaps(runs, args.window)
    meta = {**provenance(), "window": args.window, "monitor": args.monitor}
    atomic_write_json(args.results.with_suffix(".json"), {"meta": meta, "runs": rows, "loss_gaps": gaps})
    w, m = args.window, args.monitor
    lines = [
        "# Early stopping on a plateau, by run",
        "",
        f"`{meta['command']}` — {meta['date']} — {meta['machine']}",
        "",
        f"Validation {m} over the first {w} epochs, and the run's whole course.",
        "",
        f"| run | epochs | best epoch | best {m} | first {w} epochs: range | first {w} epochs: best at |",
        "|---|---|---|---|---|---|",
    ]
    for run, row in zip(runs, rows, strict=True):
        lines.append(
            f"| {label(run)} | {row['epochs']} | {row['best_epoch']} | {row['best_valid']:.4f} "
            f"| {row['early_min']:.4f}-{row['early_max']:.4f} | {row['early_best_epoch']} |"
        )
    lines += [
        "",
        "Largest difference of the training losses, epoch by epoch, over the epochs both runs reached:",
        "",
    ]
    lines += ["| run | run | epochs | max loss gap |", "|---|---|---|---|"]
    labels = {run["run_dir"]: label(run) for run in runs}
    for gap in gaps:
        lines.append(
            f"| {labels[gap['a']]} | {labels[gap['b']]} | {gap['epochs']} | {gap['max_loss_gap']:.4f} |"
        )
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
