"""Issue 5's studies in one file: on LastFM the c and alpha sweeps of BSARec and max_len 50/100/200 for BSARec
and SASRec; on Beauty BSARec's c (1, 5, 9 at alpha 0.7). Seed 42, paper preset otherwise; finished runs only.

    python benchmarks/summarize_studies.py

Reads RUNS/DATASET/MODEL/TAG/seed42/metrics.json under benchmarks/runs/studies (the sweeps, benchmarks/studies.sh
and benchmarks/studies_beauty_c.sh) and benchmarks/runs/baselines (the paper-preset cells: on LastFM alpha 0.9,
c 3, max_len 50; on Beauty alpha 0.7, c 5). Writes
benchmarks/results/studies/summary.md and, beside it, studies.png (NDCG@20 against c, alpha and max_len).
Validation NDCG@20 is what a tuner would choose by; test metrics are shown beside it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bsarec.analysis.figures import pyplot, save_figure
from bsarec.benchmark import machine_line
from bsarec.io import atomic_write_text

STUDIES = Path("benchmarks/runs/studies")
PAPER = Path("benchmarks/runs/baselines")


def metrics(model: str, tag: str, dataset: str = "LastFM") -> dict | None:
    base = PAPER if tag == "paper" else STUDIES
    path = base / dataset / model / tag / "seed42" / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def row(label: str, m: dict | None) -> str:
    if m is None:
        return f"| {label} | not run yet | | | |"
    v, t = m["valid"], m["test"]
    return (
        f"| {label} | {v['NDCG@20']:.4f} | {t['NDCG@20']:.4f} | {t['HR@10']:.4f} |"
        f" {m['best_epoch']} of {m['epochs']} |"
    )


def main() -> None:
    header = ["| {} | valid NDCG@20 | test NDCG@20 | test HR@10 | best epoch |", "|---|---:|---:|---:|---:|"]
    lines = [
        "# Studies: BSARec's c and alpha, and long sequences (seed 42)",
        "",
        f"`python {' '.join(sys.argv)}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {machine_line()}",
        "",
        "## LastFM: c at alpha 0.9",
        "",
        header[0].format("c"),
        header[1],
    ]
    lines += [row(str(c), metrics("bsarec", "paper" if c == 3 else f"c={c}")) for c in (1, 3, 5, 7, 9)]
    lines += ["", "## LastFM: alpha at c 3", "", header[0].format("alpha"), header[1]]
    lines += [
        row(str(a), metrics("bsarec", "paper" if a == 0.9 else f"alpha={a}"))
        for a in (0.1, 0.3, 0.5, 0.7, 0.9)
    ]
    lines += ["", "## LastFM: max_len", "", header[0].format("model, max_len"), header[1]]
    for length in (50, 100, 200):
        for model in ("bsarec", "sasrec"):
            tag = "paper" if length == 50 else f"max_len={length}"
            lines.append(row(f"{model}, {length}", metrics(model, tag)))
    lines += ["", "## Beauty: c at alpha 0.7", "", header[0].format("c"), header[1]]
    lines += [row(str(c), metrics("bsarec", "paper" if c == 5 else f"c={c}", "Beauty")) for c in (1, 5, 9)]
    output = Path("benchmarks/results/studies/summary.md")
    atomic_write_text(output, "\n".join(lines) + "\n")
    print("\n".join(lines))
    draw(output.with_name("studies.png"))


def draw(path: Path) -> None:
    """NDCG@20 (validation dashed, test solid) against c on both datasets, alpha and max_len on LastFM."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))

    def curve(ax, xs, runs, label, color):
        found = [(x, m) for x, m in zip(xs, runs, strict=True) if m is not None]
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

    cs = (1, 3, 5, 7, 9)
    curve(
        axes[0],
        cs,
        [metrics("bsarec", "paper" if c == 3 else f"c={c}") for c in cs],
        "LastFM (alpha 0.9)",
        "C0",
    )
    beauty = [
        metrics("bsarec", "paper" if c == 5 else f"c={c}", "Beauty") if c in (1, 5, 9) else None for c in cs
    ]
    curve(axes[0], cs, beauty, "Beauty (alpha 0.7)", "C1")
    axes[0].set(title="BSARec: low-pass cut-off c", xlabel="c", ylabel="NDCG@20", xticks=cs)
    alphas = (0.1, 0.3, 0.5, 0.7, 0.9)
    runs = [metrics("bsarec", "paper" if a == 0.9 else f"alpha={a}") for a in alphas]
    curve(axes[1], alphas, runs, "LastFM (c 3)", "C0")
    axes[1].set(title="BSARec: filter weight alpha", xlabel="alpha", ylabel="NDCG@20", xticks=alphas)
    lengths = (50, 100, 200)
    for model, color in (("bsarec", "C0"), ("sasrec", "C2")):
        runs = [metrics(model, "paper" if n == 50 else f"max_len={n}") for n in lengths]
        curve(axes[2], lengths, runs, model, color)
    axes[2].set(title="LastFM: window max_len", xlabel="max_len", ylabel="NDCG@20", xticks=lengths)
    for ax, where in zip(axes, ("center right", "lower right", "center left"), strict=True):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc=where)
    fig.suptitle("Studies, seed 42 (one run per point)")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
