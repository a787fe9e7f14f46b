"""`bsarec demo`: the main job on the embedded synthetic data, small enough for about two minutes on 2 cores."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from bsarec.api import SequentialRecommender
from bsarec.config import resolve_config
from bsarec.data.split import leave_one_out
from bsarec.data.synthetic import generate_synthetic
from bsarec.evaluation.metrics import evaluate
from bsarec.models.popularity import Popularity

COLUMNS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR")


def run_demo(output: Path, epochs: int = 10, progress: bool = False, patience: int = 3) -> dict[str, dict]:
    started = time.perf_counter()
    data = generate_synthetic()
    stats = data.stats()
    typer.echo(
        f"synthetic data: {stats['users']} users, {stats['items']} items, {stats['interactions']} interactions "
        f"(mean length {stats['mean_length']:.1f}); leave-one-out, full ranking, history excluded"
    )
    split = leave_one_out(data)
    rows = {"popularity": {**evaluate(Popularity(split), split.test), "epochs": 0, "seconds": 0.0}}
    recommenders = {}
    for model in ("bsarec", "sasrec"):
        # paper presets; patience 3 instead of 10 keeps the demo short
        config = resolve_config(
            model, "synthetic", "synthetic", "paper", {"patience": patience}, epochs=epochs
        )
        rec = SequentialRecommender(config=config).fit(data, run_dir=output / model, progress=progress)
        recommenders[model] = rec
        m = rec.metrics
        rows[f"{model} ({config.resolved_loss})"] = {
            **m["test"],
            "epochs": m["epochs"],
            "seconds": m["train_seconds"],
        }
    typer.echo("\ntest metrics (synthetic data)")
    typer.echo(f"{'model':18s}" + "".join(f"{c:>9s}" for c in COLUMNS) + f"{'epochs':>8s}{'train s':>9s}")
    for name, row in rows.items():
        typer.echo(
            f"{name:18s}"
            + "".join(f"{row[c]:9.4f}" for c in COLUMNS)
            + f"{row['epochs']:8d}{row['seconds']:9.1f}"
        )
    bsarec = recommenders["bsarec"]
    typer.echo("\nBSARec recommendations (original ids; seen items excluded)")
    for user in data.user_ids[:3]:
        history = [data.item_ids[i] for i in data.sequences[data.user_row(user)][-5:]]
        recs = bsarec.recommend(user=user, k=5)
        typer.echo(f"  user {user}: last items {' '.join(history)}\n    -> {' '.join(map(str, recs.items))}")
    typer.echo(f"\nruns saved under {output}; total {time.perf_counter() - started:.0f}s")
    typer.echo(f"try: bsarec recommend {output / 'bsarec'} --user {data.user_ids[0]} -k 10")
    return rows
