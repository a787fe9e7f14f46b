"""Cross-dataset figures: the analyses of LastFM and Beauty (BSARec against SASRec, seed 42) side by
side, one panel per dataset, from the committed analysis.json files (no model is loaded or run again).

    python benchmarks/combine_analyses.py

Reads benchmarks/results/analysis/{LastFM,Beauty}/analysis.json (written by `bsarec analyze`) and writes the
same figures as `bsarec analyze` (oversmoothing.png, attention.png, spectrum.png, beta.png, groups.png) under
benchmarks/results/analysis/combined/; the numbers stay in the two analysis.json files.
"""

from __future__ import annotations

import json
from pathlib import Path

from bsarec.analysis.report import plot

ANALYSES = Path("benchmarks/results/analysis")
DATASETS = ("LastFM", "Beauty")


def main() -> None:
    runs = [run for d in DATASETS for run in json.loads((ANALYSES / d / "analysis.json").read_text())["runs"]]
    figures = plot(runs, ANALYSES / "combined")
    for r in runs:
        cosine = " ".join(f"{c:.2f}" for c in r["oversmoothing_cosine"])
        print(f"{r['dataset']:7} {r['model']:7} cosine per layer {cosine}")
    print("written:", ", ".join(str(p) for p in figures))


if __name__ == "__main__":
    main()
