"""`bsarec analyze RUN_DIR [--compare RUN_DIR ...]`: the paper's analyses for trained runs, as JSON and PNG.

For every run: the oversmoothing curve (mean pairwise cosine of the real positions after each layer), the
spectrum of the representations per layer, each self-attention map's gain per frequency band (for the
attention models), BSARec's learned beta and effective filter per layer, and test
metrics by history length and by target popularity. Validation inputs are used for the representation
statistics (at most `users` of them), test targets for the grouped metrics. With several runs the figures
overlay them (BSARec against SASRec, say).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from bsarec.analysis.figures import pyplot, save_figure
from bsarec.analysis.statistics import (
    BAND_NAMES,
    attention_filter,
    effective_filter,
    grouped_metrics,
    length_bucket,
    low_frequency_share,
    mean_pairwise_cosine,
    popularity_groups,
    spectrum_energy,
)
from bsarec.api import SequentialRecommender
from bsarec.evaluation.metrics import target_ranks
from bsarec.io import atomic_write_json

GROUP_NAMES = ("head", "torso", "tail")
ATTENTION_USERS = 500  # attention maps are (users, heads, N, N): a sample is enough


@torch.no_grad()
def analyze_run(run_dir: str | Path, users: int = 2000) -> dict[str, Any]:

    rec = SequentialRecommender.load(run_dir)
    model, split, config = rec.model.eval(), rec.split, rec.config
    result: dict[str, Any] = {"run_dir": str(run_dir), "model": config.model, "dataset": rec.dataset.name}
    inputs = split.valid.inputs[:users]
    if hasattr(model, "hidden_states"):
        states = model.hidden_states(inputs)
        real = inputs != 0
        if config.model == "bert4rec":  # its encoder reads the history shifted, with the mask token last
            real = model.with_mask_token(inputs) != 0
        energies = [spectrum_energy(s) for s in states]
        kept = config.c // 2 + 1
        result["layers"] = ["embedding"] + [f"block {i + 1}" for i in range(len(states) - 1)]
        result["oversmoothing_cosine"] = [mean_pairwise_cosine(s, real) for s in states]
        result["spectrum_energy"] = [e.tolist() for e in energies]
        result["low_frequency_share"] = [low_frequency_share(e, kept) for e in energies]
        result["low_frequency_bins"] = kept
        maps = model.attention_maps(inputs[:ATTENTION_USERS]) if hasattr(model, "attention_maps") else []
        if maps:
            filters = [attention_filter(m, real[:ATTENTION_USERS]) for m in maps]
            result["attention_bands"] = list(BAND_NAMES)
            result["attention_band_gain"] = [f["band_gain"] for f in filters]
            result["attention_hc_to_dc"] = [f["hc_to_dc"] for f in filters]
    if config.model == "bsarec":
        betas = [block.frequency.sqrt_beta.detach().flatten() ** 2 for block in model.blocks]
        result["beta"] = [b.tolist() for b in betas]
        result["beta_mean"] = [float(b.mean()) for b in betas]
        result["effective_filter_mean"] = [
            effective_filter(block.frequency.sqrt_beta, config.max_len, config.c).mean(1).tolist()
            for block in model.blocks
        ]
    ranks = target_ranks(model, split.test, config.history_mask, config.eval_batch_size)
    lengths = (split.test.history_offsets[1:] - split.test.history_offsets[:-1]).tolist()
    result["by_history_length"] = grouped_metrics(ranks, [length_bucket(n) for n in lengths])
    train_counts = np.bincount(split.train_targets.numpy(), minlength=rec.dataset.n_items)
    groups = popularity_groups(train_counts)[split.test.targets.numpy()]
    result["by_target_popularity"] = grouped_metrics(ranks, [GROUP_NAMES[g] for g in groups])
    return result


def label(result: dict[str, Any]) -> str:
    return f"{result['model']} ({Path(result['run_dir']).name})"


def by_dataset(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The runs grouped by dataset, in order of first appearance: each dataset gets its own panel."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(r["dataset"], []).append(r)
    return groups


def panels(plt, count: int, width: float, height: float = 3.5, rows: int = 1, **kwargs):
    fig, axes = plt.subplots(rows, count, figsize=(width * count, height * rows), squeeze=False, **kwargs)
    return fig, axes


def plot(results: list[dict[str, Any]], output: Path) -> list[Path]:
    """Write the figures; runs on different datasets get side-by-side panels, runs on one dataset overlay."""
    plt = pyplot()
    written = []
    with_states = [r for r in results if "oversmoothing_cosine" in r]
    if with_states:
        datasets = by_dataset(with_states)
        fig, axes = panels(plt, len(datasets), 5, sharey=True)
        for ax, (dataset, runs) in zip(axes[0], datasets.items(), strict=True):
            for r in runs:
                ax.plot(r["layers"], r["oversmoothing_cosine"], marker="o", label=label(r))
            ax.set_title(f"Oversmoothing, {dataset}")
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("mean pairwise cosine (real positions)")
        written.append(save_figure(fig, output / "oversmoothing.png"))
        fig, axes = panels(plt, len(with_states), 4.5)
        for ax, r in zip(axes[0], with_states, strict=True):
            for name, energy in zip(r["layers"], r["spectrum_energy"], strict=True):
                ax.semilogy(energy, label=name)
            ax.set_xlabel("rfft bin")
            ax.set_title(f"{label(r)}, {r['dataset']}", fontsize=8)
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("energy")
        written.append(save_figure(fig, output / "spectrum.png"))
    with_attention = [r for r in results if "attention_band_gain" in r]
    if with_attention:
        datasets = by_dataset(with_attention)
        fig, axes = panels(plt, len(datasets), 6, sharey=True)
        for ax, (dataset, runs) in zip(axes[0], datasets.items(), strict=True):
            for r in runs:
                for i, gains in enumerate(r["attention_band_gain"]):
                    ax.plot(r["attention_bands"], gains, marker="o", label=f"{label(r)}, block {i + 1}")
            ax.axhline(1.0, color="grey", lw=0.5)
            ax.set_xlabel("normalised frequency k/L")
            ax.set_title(f"Self-attention as a filter, {dataset}", fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
            ax.legend(fontsize=6)
        axes[0][0].set_ylabel("gain of the attention map")
        written.append(save_figure(fig, output / "attention.png"))
    bsarec = [r for r in results if "beta" in r]
    if bsarec:
        fig, axes = panels(plt, len(bsarec), 5)
        for ax, r in zip(axes[0], bsarec, strict=True):
            for i, beta in enumerate(r["beta"]):
                ax.plot(sorted(beta), label=f"layer {i + 1} (mean {np.mean(beta):.2f})")
            ax.axhline(1.0, color="grey", lw=0.5)
            ax.set_xlabel("hidden unit (sorted)")
            ax.set_ylabel("beta")
            ax.set_title(f"Learned beta, {label(r)}, {r['dataset']}", fontsize=8)
            ax.legend(fontsize=7)
        written.append(save_figure(fig, output / "beta.png"))
    datasets = by_dataset(results)
    fig, axes = panels(plt, 2, 5, rows=len(datasets))
    for row, (dataset, runs) in zip(axes, datasets.items(), strict=True):
        for key, ax, title in (
            ("by_history_length", row[0], "by history length"),
            ("by_target_popularity", row[1], "by target popularity"),
        ):
            groups = list(runs[0][key])
            if key == "by_history_length":
                groups.sort(key=lambda g: int(g.split("-")[0].lstrip(">")))
            else:
                groups = [g for g in GROUP_NAMES if g in groups]
            width = 0.8 / len(runs)
            for i, r in enumerate(runs):
                values = [r[key].get(g, {}).get("NDCG@10", 0.0) for g in groups]
                ax.bar(np.arange(len(groups)) + i * width, values, width, label=label(r))
            ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
            ax.set_xticklabels([f"{g}\n({runs[0][key][g]['users']})" for g in groups], fontsize=7)
            ax.set_ylabel("test NDCG@10")
            ax.set_title(f"{dataset}, {title}")
            ax.legend(fontsize=7)
    written.append(save_figure(fig, output / "groups.png"))
    return written


def analyze(run_dirs: list[str | Path], output: str | Path, users: int = 2000) -> dict[str, Any]:
    output = Path(output)
    results = [analyze_run(run, users) for run in run_dirs]
    figures = plot(results, output)
    summary = {"runs": results, "figures": [str(p) for p in figures]}
    atomic_write_json(output / "analysis.json", summary)
    return summary
