"""`bsarec demo`: the main job on the embedded synthetic data, small enough for about two minutes on 2 cores.

`run_demo` trains and returns the results; `demo_report` turns them into the text the CLI prints."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bsarec.api import SequentialRecommender
from bsarec.config import resolve_config
from bsarec.data.split import leave_one_out
from bsarec.data.synthetic import generate_synthetic
from bsarec.evaluation.metrics import evaluate
from bsarec.evaluation.popularity import Popularity

COLUMNS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR")
DEMO_MODELS = ("bsarec", "sasrec")


@dataclass
class DemoResult:
    output: Path
    data_stats: dict[str, Any]
    rows: dict[str, dict[str, Any]]  # test metrics, epochs and training seconds per model
    examples: list[tuple[Any, list[Any], list[Any]]] = field(default_factory=list)  # user, last items, top 5
    seconds: float = 0.0


def run_demo(output: Path, epochs: int = 10, progress: bool = False, patience: int = 3) -> DemoResult:
    """Train BSARec and SASRec (paper presets; patience 3 instead of 10 keeps it short) on the embedded data
    and compare them with the popularity ranking; the runs are saved under `output`."""
    started = time.perf_counter()
    data = generate_synthetic()
    split = leave_one_out(data)
    rows = {"popularity": {**evaluate(Popularity(split), split.test), "epochs": 0, "seconds": 0.0}}
    recommenders = {}
    for model in DEMO_MODELS:
        config = resolve_config(
            model, "synthetic", "synthetic", "paper", {"patience": patience}, epochs=epochs
        )
        rec = SequentialRecommender(config=config).fit(
            data, run_dir=output / model, progress=progress, overwrite=True
        )  # the demo's own runs: replaced each time
        recommenders[model] = rec
        m = rec.metrics
        rows[f"{model} ({config.resolved_loss})"] = {
            **m["test"],
            "epochs": m["epochs"],
            "seconds": m["train_seconds"],
        }
    examples = []
    for user in data.user_ids[:3]:
        history = [data.item_ids[i] for i in data.sequences[data.user_row(user)][-5:]]
        examples.append((user, history, recommenders["bsarec"].recommend(user=user, k=5).items))
    return DemoResult(output, data.stats(), rows, examples, time.perf_counter() - started)


def demo_report(result: DemoResult) -> str:
    stats = result.data_stats
    lines = [
        f"synthetic data: {stats['users']} users, {stats['items']} items, {stats['interactions']} interactions "
        f"(mean length {stats['mean_length']:.1f}); leave-one-out, full ranking, history excluded",
        "",
        "test metrics (synthetic data)",
        f"{'model':18s}" + "".join(f"{c:>9s}" for c in COLUMNS) + f"{'epochs':>8s}{'train s':>9s}",
    ]
    for name, row in result.rows.items():
        lines.append(
            f"{name:18s}"
            + "".join(f"{row[c]:9.4f}" for c in COLUMNS)
            + f"{row['epochs']:8d}{row['seconds']:9.1f}"
        )
    lines += ["", "BSARec recommendations (original ids; seen items excluded)"]
    for user, history, recommended in result.examples:
        lines.append(
            f"  user {user}: last items {' '.join(history)}\n    -> {' '.join(map(str, recommended))}"
        )
    lines += [
        "",
        f"runs saved under {result.output}; total {result.seconds:.0f}s",
        f"try: bsarec recommend {result.output / 'bsarec'} --user {result.examples[0][0]} -k 10",
    ]
    return "\n".join(lines)
