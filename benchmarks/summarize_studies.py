"""The BSARec sensitivity studies in one file: on LastFM the c and alpha sweeps of BSARec and max_len 50/100/200 for BSARec
and SASRec; on Beauty BSARec's c (1, 3, 5, 9 at alpha 0.7); on both, the levers beyond the paper's grid (cyclic padding,
patience 20; on LastFM max_len 200 with c 9, on Beauty lr 1e-3); on Yelp and Sports_and_Outdoors, less dropout.
Seed 42, paper preset otherwise; finished runs only.

    python benchmarks/summarize_studies.py

Reads RUNS/DATASET/MODEL/TAG/seed42/metrics.json under benchmarks/runs/studies (the sweeps: `benchmarks/grids.sh studies-c`,
`studies-alpha` and `studies-max-len`) and benchmarks/runs/baselines (the paper-preset cells: on LastFM alpha 0.9,
c 3, max_len 50; on Beauty alpha 0.7, c 5). Writes
benchmarks/results/studies/summary.md and, beside it, studies.png (NDCG@20 against c, alpha and max_len).
Validation NDCG@20 is what a tuner would choose by; test metrics are shown beside it.

The levers beyond the paper's grid are read from their committed benchmark results instead
(benchmarks/results/studies/NAME/results.json, written by `studies-padding`, `studies-patience`, `studies-lr` and `studies-dropout`).

Every cell found is also recorded in benchmarks/results/studies/summary.json, which is read first: a cell whose
run directory is gone (a fresh clone) keeps its recorded numbers instead of becoming "not run yet".
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bsarec.analysis.figures import pyplot, save_figure
from bsarec.environment import machine_line
from bsarec.io import atomic_write_json, atomic_write_text

STUDIES = Path("benchmarks/runs/studies")
PAPER = Path("benchmarks/runs/baselines")
OUTPUT = Path("benchmarks/results/studies/summary.md")
RECORD = OUTPUT.with_suffix(".json")  # {cell: the metrics shown}, kept across runs
RECORDED = json.loads(RECORD.read_text()) if RECORD.is_file() else {}


def metrics(model: str, tag: str, dataset: str = "LastFM") -> dict | None:
    """A cell's metrics from its run directory, recorded for later; else as recorded earlier; else None."""
    base = PAPER if tag == "paper" else STUDIES
    path = base / dataset / model / tag / "seed42" / "metrics.json"
    cell = f"{dataset}/{model}/{tag}"
    if path.is_file():
        m = json.loads(path.read_text())
        RECORDED[cell] = {
            "valid": {"NDCG@20": m["valid"]["NDCG@20"]},
            "test": {k: m["test"][k] for k in ("NDCG@20", "HR@10")},
            "best_epoch": m["best_epoch"],
            "epochs": m["epochs"],
        }
    return RECORDED.get(cell)


def committed(name: str, dataset: str | None = None) -> dict | None:
    """BSARec's seed-42 cell (on DATASET, if given) of a committed result (benchmarks/results/studies/NAME; NAME may
    also climb out of it, as ../baselines/Sports_Yelp), or None if not run yet."""
    path = OUTPUT.parent / name / "results.json"
    if not path.is_file():
        return None
    for cell in json.loads(path.read_text())["per_seed"]:
        if cell["model"] == "bsarec" and cell["seed"] == 42 and dataset in (None, cell["dataset"]):
            return {
                "valid": {"NDCG@20": cell["valid_NDCG@20"]},
                "test": {k: cell[k] for k in ("NDCG@20", "HR@10")},
                "best_epoch": cell["best_epoch"],
                "epochs": cell["epochs"],
            }
    return None


# Levers beyond the paper's grid: (label, committed study result), the paper-preset cell first
# (on Yelp and Sports_and_Outdoors read from the committed frontier grid, whose run directories are not recorded)
PAPER_CELL = {"Yelp": "../baselines/Sports_Yelp", "Sports_and_Outdoors": "../baselines/Sports_Yelp"}
LEVERS = {
    "LastFM": [
        ("cyclic padding", "padding_cyclic"),
        ("patience 20", "patience20"),
        ("max_len 200 with c 9", "max_len200_c9"),
    ],
    "Beauty": [
        ("cyclic padding", "beauty_padding_cyclic"),
        ("patience 20", "beauty_patience20"),
        ("lr 1e-3", "beauty_lr0.001"),
    ],
    "Yelp": [("dropout 0.1", "yelp_dropout0.1")],
    "Sports_and_Outdoors": [("dropout 0.3", "sports_dropout0.3")],
}


def row(label: str, m: dict | None) -> str:
    if m is None:
        return f"| {label} | not run yet | | | |"
    v, t = m["valid"], m["test"]
    return (
        f"| {label} | {v['NDCG@20']:.4f} | {t['NDCG@20']:.4f} | {t['HR@10']:.4f} |"
        f" {m['best_epoch']} of {m['epochs']} |"
    )


def sweep(model: str, setting: str, values: tuple, paper: float | int, dataset: str = "LastFM") -> list:
    """[(value, metrics or None)] of one setting; the paper's value is the baselines grid's paper-preset cell.

    A BSARec cell neither in its run directory nor recorded is read from its committed benchmark result
    (benchmarks/results/studies/[beauty_]SETTINGVALUE, e.g. beauty_c3), as `benchmarks/grids.sh` writes it."""
    prefix = "" if dataset == "LastFM" else f"{dataset.lower()}_"
    found = []
    for v in values:
        m = metrics(model, "paper" if v == paper else f"{setting}={v}", dataset)
        if m is None and model == "bsarec" and v != paper:
            m = committed(f"{prefix}{setting}{v}")
        found.append((v, m))
    return found


def main() -> None:
    sweeps = {
        "lastfm_c": sweep("bsarec", "c", (1, 3, 5, 7, 9), 3),
        "beauty_c": sweep("bsarec", "c", (1, 3, 5, 9), 5, "Beauty"),
        "alpha": sweep("bsarec", "alpha", (0.1, 0.3, 0.5, 0.7, 0.9), 0.9),
        "bsarec_max_len": sweep("bsarec", "max_len", (50, 100, 200), 50),
        "sasrec_max_len": sweep("sasrec", "max_len", (50, 100, 200), 50),
    }
    header = ["| {} | valid NDCG@20 | test NDCG@20 | test HR@10 | best epoch |", "|---|---:|---:|---:|---:|"]
    lines = [
        "# Studies: BSARec's c and alpha, long sequences and other levers (seed 42)",
        "",
        f"`python {' '.join(sys.argv)}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {machine_line()}",
        "",
        "## LastFM: c at alpha 0.9",
        "",
        header[0].format("c"),
        header[1],
    ]
    lines += [row(str(c), m) for c, m in sweeps["lastfm_c"]]
    lines += ["", "## LastFM: alpha at c 3", "", header[0].format("alpha"), header[1]]
    lines += [row(str(a), m) for a, m in sweeps["alpha"]]
    lines += ["", "## LastFM: max_len", "", header[0].format("model, max_len"), header[1]]
    for (length, bsarec), (_, sasrec) in zip(sweeps["bsarec_max_len"], sweeps["sasrec_max_len"], strict=True):
        lines += [row(f"bsarec, {length}", bsarec), row(f"sasrec, {length}", sasrec)]
    lines += ["", "## Beauty: c at alpha 0.7", "", header[0].format("c"), header[1]]
    lines += [row(str(c), m) for c, m in sweeps["beauty_c"]]
    for dataset, levers in LEVERS.items():
        lines += ["", f"## {dataset}: beyond the paper's grid", "", header[0].format("setting"), header[1]]
        paper = (
            committed(PAPER_CELL[dataset], dataset)
            if dataset in PAPER_CELL
            else metrics("bsarec", "paper", dataset)
        )
        lines += [row("paper preset", paper)]
        lines += [row(label, committed(name)) for label, name in levers]
    atomic_write_json(RECORD, dict(sorted(RECORDED.items())))
    atomic_write_text(OUTPUT, "\n".join(lines) + "\n")
    print("\n".join(lines))
    draw(sweeps, OUTPUT.with_name("studies.png"))


def draw(sweeps: dict[str, list], path: Path) -> None:
    """NDCG@20 (validation dashed, test solid) against c on both datasets, alpha and max_len on LastFM."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))

    def curve(ax, points, label, color):
        found = [(x, m) for x, m in points if m is not None]
        x = [x for x, _ in found]
        ax.plot(x, [m["test"]["NDCG@20"] for _, m in found], "o-", color=color, label=f"{label} test")
        ax.plot(
            x,
            [m["valid"]["NDCG@20"] for _, m in found],
            "o--",
            color=color,
            alpha=0.6,
            label=f"{label} valid",
        )

    curve(axes[0], sweeps["lastfm_c"], "LastFM (alpha 0.9)", "C0")
    curve(axes[0], sweeps["beauty_c"], "Beauty (alpha 0.7)", "C1")
    axes[0].set(title="BSARec: low-pass cut-off c", xlabel="c", ylabel="NDCG@20", xticks=(1, 3, 5, 7, 9))
    curve(axes[1], sweeps["alpha"], "LastFM (c 3)", "C0")
    axes[1].set(
        title="BSARec: filter weight alpha",
        xlabel="alpha",
        ylabel="NDCG@20",
        xticks=(0.1, 0.3, 0.5, 0.7, 0.9),
    )
    curve(axes[2], sweeps["bsarec_max_len"], "bsarec", "C0")
    curve(axes[2], sweeps["sasrec_max_len"], "sasrec", "C2")
    axes[2].set(title="LastFM: window max_len", xlabel="max_len", ylabel="NDCG@20", xticks=(50, 100, 200))
    for ax, where in zip(axes, ("center right", "lower right", "center left"), strict=True):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc=where)
    fig.suptitle("Studies, seed 42 (one run per point)")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
