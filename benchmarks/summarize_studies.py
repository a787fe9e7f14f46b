"""Issue 5's studies in one file: on LastFM the c and alpha sweeps of BSARec and max_len 50/100/200 for BSARec
and SASRec; on Beauty BSARec's c (1, 5, 9 at alpha 0.7). Seed 42, paper preset otherwise; finished runs only.

    python benchmarks/summarize_studies.py

Reads RUNS/DATASET/MODEL/TAG/seed42/metrics.json under benchmarks/runs/studies (the sweeps, benchmarks/studies.sh
and benchmarks/studies_beauty_c.sh) and benchmarks/runs/baselines (the paper-preset cells: on LastFM alpha 0.9,
c 3, max_len 50; on Beauty alpha 0.7, c 5). Writes
benchmarks/results/studies/summary.md. Validation NDCG@20 is what a tuner would choose by; test metrics are
shown beside it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

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


if __name__ == "__main__":
    main()
