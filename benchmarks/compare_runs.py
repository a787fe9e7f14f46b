"""Two sets of grid results side by side, paired by seed: mean ± std of the test metrics, the difference and a
two-sided paired t-test over the seeds both finished.

    python benchmarks/compare_runs.py --title "Item attributes on LastFM" --output benchmarks/results/item_features_LastFM.md \
        --pair "BSARec=baselines/LastFM:bsarec,item_features/LastFM/bsarec:bsarec" \
        --pair "SASRec (CE)=sasrec_ce/LastFM:sasrec,item_features/LastFM/sasrec_ce:sasrec"

A pair is LABEL=BASE_RESULTS:MODEL,VARIANT_RESULTS:MODEL, the results folders relative to benchmarks/results
(A+B:MODEL joins the seeds of one setting that two grids ran).
benchmarks/README.md lists the comparisons the committed results come from.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

from scipy import stats

from bsarec.io import atomic_write_text

METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20")
RESULTS = Path("benchmarks/results")


def rows(spec: str) -> dict[int, dict]:
    """A side's rows by seed: FOLDER:MODEL, or FOLDER+FOLDER:MODEL for one setting whose seeds two grids ran
    (the first folder's row wins a seed both hold)."""
    folders, model = spec.rsplit(":", 1)
    out: dict[int, dict] = {}
    for folder in folders.split("+"):
        path = RESULTS / folder / "results.json"
        if path.is_file():
            for r in json.loads(path.read_text())["per_seed"]:
                if r["model"] == model:
                    out.setdefault(r["seed"], r)
    return out


def fmt(values: list[float]) -> str:
    """Mean ± std, or the one value (a single seed has no spread)."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--title", required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--pair", action="append", required=True, help="LABEL=BASE:MODEL,VARIANT:MODEL")
    parser.add_argument("--names", default="base,variant", help="the two columns' names")
    args = parser.parse_args()
    base_name, variant_name = args.names.split(",")
    lines = [
        f"# {args.title}",
        "",
        f"`python benchmarks/compare_runs.py {shlex.join(sys.argv[1:])}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "Test metrics, mean ± std over the seeds both finished; difference of the means; paired t-test p (two-sided;"
        " – where fewer than 2 seeds).",
    ]
    tests, beyond_spread = [], []  # (p, label, metric) of every paired test; differences beyond a seed std
    for pair in args.pair:
        label, specs = pair.split("=", 1)
        base_spec, variant_spec = specs.split(",")
        base, variant = rows(base_spec), rows(variant_spec)
        seeds = sorted(set(base) & set(variant))
        lines += ["", f"## {label}: seeds {seeds}", ""]
        if not seeds:
            lines.append("No seed has finished in both yet.")
            continue
        lines += [f"| metric | {base_name} | {variant_name} | difference | p |", "|---|---|---|---|---|"]
        for metric in METRICS:
            a, b = [base[s][metric] for s in seeds], [variant[s][metric] for s in seeds]
            diffs = [y - x for x, y in zip(a, b, strict=True)]
            p = "–"
            if len(seeds) > 1 and len(set(diffs)) > 1:
                pvalue = float(stats.ttest_rel(b, a).pvalue)
                p = f"{pvalue:.3f}"
                tests.append((pvalue, label, metric))
            difference = statistics.fmean(b) - statistics.fmean(a)
            if len(a) > 1 and abs(difference) > statistics.stdev(a):
                beyond_spread.append(f"{label} {metric}")
            lines.append(f"| {metric} | {fmt(a)} | {fmt(b)} | {difference:+.4f} | {p} |")
        per_seed = ", ".join(f"{s}: {base[s]['NDCG@10']:.4f} → {variant[s]['NDCG@10']:.4f}" for s in seeds)
        lines += ["", f"NDCG@10 per seed ({base_name} → {variant_name}): {per_seed}."]
        if len(base) > len(seeds):  # fewer shared seeds than the base has: its own spread is the yardstick
            spread = ", ".join(
                f"{m} {fmt([r[m] for r in base.values()])}" for m in ("HR@10", "NDCG@10", "NDCG@20")
            )
            lines.append(f"The {base_name} over all its seeds {sorted(base)}: {spread}.")
    if tests:
        lines += ["", "## All pairs", "", *overall(tests, beyond_spread, base_name)]
    atomic_write_text(args.output, "\n".join(lines) + "\n")
    print("\n".join(lines))


def overall(tests: list[tuple[float, str, str]], beyond_spread: list[str], base_name: str) -> list[str]:
    """The gate's reading of every paired test at once: how many fall under 0.05, and the smallest p after
    Holm's correction for the number of tests (with many tests, some fall under 0.05 by chance alone)."""
    ranked = sorted(tests)
    holm = min(1.0, len(ranked) * ranked[0][0])  # Holm's first step: the smallest p times the number of tests
    under = [f"{label} {metric} (p {p:.3f})" for p, label, metric in ranked if p < 0.05]
    return [
        f"- {len(ranked)} paired tests; under 0.05: {', '.join(under) if under else 'none'}.",
        f"- Holm's correction over the {len(ranked)}: the smallest adjusted p is {holm:.3f}"
        f" ({ranked[0][1]} {ranked[0][2]}).",
        "- Differences of the means larger than the "
        + base_name
        + "'s seed standard deviation: "
        + (", ".join(beyond_spread) if beyond_spread else "none")
        + ".",
    ]


if __name__ == "__main__":
    main()
