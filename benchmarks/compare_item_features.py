"""Does item side information help? Each model with and without its dataset's S3-Rec attributes, paired by seed.

    python benchmarks/compare_item_features.py [--dataset LastFM]

Reads the id-only runs (benchmarks/results/baselines/DATASET for BSARec, benchmarks/results/sasrec_ce/DATASET
for SASRec with cross-entropy) and the runs with attributes (benchmarks/results/item_features/DATASET/MODEL,
from `bash benchmarks/grids.sh item-features-lastfm`), and writes benchmarks/results/item_features_DATASET.md:
mean ± std of the test metrics, the difference, and a two-sided paired t-test over the shared seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from scipy import stats

from bsarec.io import atomic_write_text

METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20")
RESULTS = Path("benchmarks/results")
PAIRS = {  # label: (model in the results, id-only results, results with attributes)
    "BSARec": ("bsarec", "baselines/{dataset}", "item_features/{dataset}/bsarec"),
    "SASRec (CE)": ("sasrec", "sasrec_ce/{dataset}", "item_features/{dataset}/sasrec_ce"),
}


def rows(path: Path, model: str) -> dict[int, dict]:
    if not path.is_file():
        return {}
    return {r["seed"]: r for r in json.loads(path.read_text())["per_seed"] if r["model"] == model}


def fmt(values: list[float]) -> str:
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="LastFM")
    args = parser.parse_args()
    lines = [
        f"# Item attributes on {args.dataset}: each model with and without them (paper preset otherwise)",
        "",
        f"`python benchmarks/compare_item_features.py --dataset {args.dataset}` — "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "Test metrics, mean ± std over the seeds both finished; difference of the means; paired t-test p "
        "(two-sided). Attributes: the dataset's S3-Rec item attributes as one categorical field, added to the id "
        "embedding (docs/item_features.md).",
    ]
    for label, (model, plain_dir, featured_dir) in PAIRS.items():
        plain = rows(RESULTS / plain_dir.format(dataset=args.dataset) / "results.json", model)
        featured = rows(RESULTS / featured_dir.format(dataset=args.dataset) / "results.json", model)
        seeds = sorted(set(plain) & set(featured))
        lines += ["", f"## {label}, seeds {seeds}", ""]
        if not seeds:
            lines.append("No seed has finished with and without attributes yet.")
            continue
        lines += ["| metric | ids | ids + attributes | difference | p |", "|---|---|---|---|---|"]
        for metric in METRICS:
            a, b = [plain[s][metric] for s in seeds], [featured[s][metric] for s in seeds]
            diffs = [y - x for x, y in zip(a, b, strict=True)]
            p = stats.ttest_rel(b, a).pvalue if len(seeds) > 1 and len(set(diffs)) > 1 else float("nan")
            lines.append(
                f"| {metric} | {fmt(a)} | {fmt(b)} | {statistics.fmean(b) - statistics.fmean(a):+.4f} | {p:.3f} |"
            )
        per_seed = ", ".join(f"{s}: {plain[s]['NDCG@10']:.4f} → {featured[s]['NDCG@10']:.4f}" for s in seeds)
        lines += ["", f"NDCG@10 per seed (ids → ids + attributes): {per_seed}."]
    out = RESULTS / f"item_features_{args.dataset}.md"
    atomic_write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
