"""Zero vs cyclic padding for BSARec on LastFM: paired by seed, from the two benchmark grids' results.

    python benchmarks/compare_padding.py

Reads benchmarks/results/baselines/LastFM/results.json (zeros, the paper protocol) and
benchmarks/results/padding/results.json (padding=cyclic) and writes benchmarks/results/padding_comparison.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from scipy import stats

from bsarec.io import atomic_write_text

METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20")


def rows(path: Path) -> dict[int, dict]:
    return {r["seed"]: r for r in json.loads(path.read_text())["per_seed"] if r["model"] == "bsarec"}


def main() -> None:
    zeros = rows(Path("benchmarks/results/baselines/LastFM/results.json"))
    cyclic = rows(Path("benchmarks/results/padding/results.json"))
    seeds = sorted(set(zeros) & set(cyclic))
    lines = [
        "# BSARec on LastFM: zero vs cyclic padding (paper preset otherwise)",
        "",
        f"`python {' '.join(sys.argv)}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; seeds {seeds}",
        "",
        "| metric | zeros | cyclic | difference (cyclic - zeros) | paired t-test p |",
        "|---|---|---|---|---|",
    ]
    for metric in METRICS:
        a = [zeros[s][metric] for s in seeds]
        b = [cyclic[s][metric] for s in seeds]
        p = stats.ttest_rel(b, a).pvalue if len(seeds) > 1 else float("nan")
        lines.append(
            f"| {metric} | {statistics.fmean(a):.4f} ± {statistics.stdev(a) if len(a) > 1 else 0:.4f} | "
            f"{statistics.fmean(b):.4f} ± {statistics.stdev(b) if len(b) > 1 else 0:.4f} | "
            f"{statistics.fmean(b) - statistics.fmean(a):+.4f} | {p:.3f} |"
        )
    per_seed = ", ".join(f"seed {s}: {zeros[s]['NDCG@10']:.4f} → {cyclic[s]['NDCG@10']:.4f}" for s in seeds)
    lines += ["", f"NDCG@10 per seed (zeros → cyclic): {per_seed}."]
    atomic_write_text(Path("benchmarks/results/padding_comparison.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
