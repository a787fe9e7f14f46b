"""Reproduction benchmark: BSARec with the paper presets on LastFM and Beauty over 3 seeds.

Resumable: every (dataset, seed) is a normal run directory under --runs; finished runs (metrics.json
present) are skipped. After each finished run the results file is rewritten with per-seed and
mean ± std test metrics, the command, the date and the machine.

    python benchmarks/reproduce.py --data-dir ../shared/data            # all of it
    python benchmarks/reproduce.py --datasets LastFM --seeds 42 43 44    # a part
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

from bsarec.api import SequentialRecommender, environment
from bsarec.config import resolve_config
from bsarec.data.registry import resolve_dataset
from bsarec.io import atomic_write_json, atomic_write_text

REFERENCE = {  # PROTOCOL.md: the reference code's logs (GPU) and the same code on this project's CPU machine
    "LastFM": {"gpu": {"HR@10": 0.0807, "NDCG@10": 0.0435}, "cpu": {"HR@10": 0.0661, "NDCG@10": 0.0408}},
    "Beauty": {"gpu": {"HR@10": 0.1008, "NDCG@10": 0.0611}},
}
METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR")


def zero_mask_metrics(run_dir: Path) -> dict:
    """Test metrics of the same weights under the reference code's 0-score history masking (cached)."""
    cached = run_dir / "metrics_history_mask_zero.json"
    if not cached.is_file():
        metrics = SequentialRecommender.load(run_dir).evaluate("test", history_mask="zero")
        atomic_write_json(cached, metrics)
    return json.loads(cached.read_text())


def summarise(runs_dir: Path, datasets: list[str], seeds: list[int]) -> dict:
    results: dict = {}
    for name in datasets:
        per_seed = {}
        for seed in seeds:
            metrics_file = runs_dir / f"bsarec-{name}-seed{seed}" / "metrics.json"
            if metrics_file.is_file():
                m = json.loads(metrics_file.read_text())
                zero = zero_mask_metrics(metrics_file.parent)
                per_seed[seed] = {
                    "test_history_mask_zero": zero,
                    **m["test"],
                    "best_epoch": m["best_epoch"],
                    "epochs": m["epochs"],
                    "train_seconds": m["train_seconds"],
                }
        summary = {}
        for metric in METRICS:
            values = [r[metric] for r in per_seed.values()]
            if values:
                summary[metric] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "n": len(values),
                }
        results[name] = {"per_seed": per_seed, "summary": summary, "reference": REFERENCE.get(name, {})}
    return results


def markdown(results: dict, header: str) -> str:
    lines = [
        header,
        "",
        "| dataset | seeds | " + " | ".join(METRICS) + " | epochs (best) |",
        "|---" * (len(METRICS) + 3) + "|",
    ]
    for name, r in results.items():
        s = r["summary"]
        if not s:
            lines.append(f"| {name} | 0 | " + " | ".join("—" for _ in METRICS) + " | — |")
            continue
        cells = [f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}" for m in METRICS]
        epochs = ", ".join(f"{v['epochs']} ({v['best_epoch']})" for v in r["per_seed"].values())
        lines.append(
            f"| {name} | {s['HR@10']['n']} ({', '.join(map(str, r['per_seed']))}) | "
            + " | ".join(cells)
            + f" | {epochs} |"
        )
    lines.append("")
    lines.append(
        "Same weights, the reference code's 0-score history masking instead of exclusion (test, mean over seeds):"
    )
    lines.append("")
    for name, r in results.items():
        zero = [v["test_history_mask_zero"] for v in r["per_seed"].values()]
        if zero:
            cells = ", ".join(
                f"{m} {statistics.fmean(z[m] for z in zero):.4f}" for m in ("HR@10", "NDCG@10", "NDCG@20")
            )
            lines.append(f"- {name}: {cells}")
    lines.append("")
    for name, r in results.items():
        for where, ref in r["reference"].items():
            lines.append(
                f"- {name}, reference code ({where}): HR@10 {ref['HR@10']:.4f}, NDCG@10 {ref['NDCG@10']:.4f}"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["LastFM", "Beauty"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs", type=Path, default=Path("benchmarks/runs/reproduce"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/reproduce"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--summary-only", action="store_true", help="only rewrite the results from finished runs"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    command = "python " + " ".join(sys.argv)
    for name in [] if args.summary_only else args.datasets:
        data = resolve_dataset(name, args.data_dir)
        for seed in args.seeds:
            run_dir = args.runs / f"bsarec-{name}-seed{seed}"
            if (run_dir / "metrics.json").is_file():
                logging.info("skip %s (finished)", run_dir)
                continue
            config = resolve_config(
                "bsarec", name, name, "paper", seed=seed, threads=args.threads, data_dir=args.data_dir
            )
            SequentialRecommender(config=config).fit(data, run_dir=run_dir, progress=False)
            write_results(args, command)
    write_results(args, command)


def copy_run_records(runs_dir: Path, results: Path) -> None:
    """Keep each finished run's config, metrics and per-epoch history beside the results (the weights stay out)."""
    for metrics_file in sorted(runs_dir.glob("*/metrics.json")):
        target = results.parent / f"{results.name}_runs" / metrics_file.parent.name
        for name in ("config.json", "metrics.json", "history.jsonl"):
            atomic_write_text(target / name, (metrics_file.parent / name).read_text())


def write_results(args, command: str) -> None:
    results = summarise(args.runs, args.datasets, args.seeds)
    copy_run_records(args.runs, args.results)
    env = environment()
    meta = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {env['cpu_count']} cores, torch {env['torch']}",
        "protocol": "PROTOCOL.md: leave-one-out, full ranking, history excluded, early stop on valid NDCG@20",
    }
    atomic_write_json(args.results.with_suffix(".json"), {"meta": meta, "results": results})
    header = (
        f"# BSARec reproduction (paper presets)\n\n`{meta['command']}` — {meta['date']} — {meta['machine']}\n\n"
        f"Test metrics, mean ± std over seeds ({meta['protocol']})."
    )
    atomic_write_text(args.results.with_suffix(".md"), markdown(results, header))


if __name__ == "__main__":
    main()
