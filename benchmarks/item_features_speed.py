"""What item side information costs per training step: BSARec (paper preset) on Beauty, with and without its
S3-Rec attributes (one categorical field, 637 values, 3.7 per item), side by side in one process.

    python benchmarks/item_features_speed.py --data-dir ../shared/data

The two models alternate, `steps` steps each per repeat, on the training loop's own batches; the result is
the median seconds per step of each and their ratio (the goal: at most 1.15). Writes
benchmarks/results/item_features_speed.{json,md}. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from bsarec.api import build_run_model
from bsarec.config import resolve_config
from bsarec.data.item_features import resolve_item_features
from bsarec.data.registry import resolve_dataset
from bsarec.data.split import leave_one_out
from bsarec.environment import machine_line
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.training.sampling import BatchMaker
from bsarec.training.trainer import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--model", default="bsarec")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/item_features_speed"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = resolve_dataset(args.dataset, args.data_dir)
    config = resolve_config(args.model, args.dataset, data.name, "paper")
    split = leave_one_out(data, config.max_len)
    features = resolve_item_features("attributes", data, args.data_dir)
    order = torch.randperm(len(split.train_targets), generator=torch.Generator().manual_seed(0))
    batches = [
        order[i : i + config.batch_size] for i in range(0, len(order) - config.batch_size, config.batch_size)
    ]
    setups = {}
    for name, with_features in (("ids", False), ("ids + attributes", True)):
        torch.manual_seed(0)
        model = build_run_model(config, data, features if with_features else None, split).train()
        setups[name] = (model, make_optimizer(model, config), BatchMaker(model, split, "cpu"))
    generator = torch.Generator().manual_seed(1)

    def run_steps(name: str, first: int) -> float:
        model, optimizer, make_batch = setups[name]
        started = time.perf_counter()
        for i in range(args.steps):
            loss = model.loss(**make_batch(batches[(first + i) % len(batches)], generator))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - started) / args.steps

    for name in setups:  # warm-up
        run_steps(name, 0)
    times: dict[str, list[float]] = {name: [] for name in setups}
    for r in range(args.repeats):
        for name in setups:  # alternating, so that both see the same machine
            times[name].append(run_steps(name, r * args.steps))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["ids + attributes"] / medians["ids"]
    command = f"python benchmarks/item_features_speed.py --dataset {args.dataset} --model {args.model}" + (
        f" --threads {args.threads}" if args.threads else ""
    )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result = {
        "command": command,
        "date": stamp,
        "machine": machine_line(),
        "dataset": data.name,
        "model": args.model,
        "fields": features.names,
        "vocabulary": len(features.categorical[0].vocabulary),
        "seconds_per_step": medians,
        "seconds_each_repeat": times,
        "ratio": ratio,
        "goal": 1.15,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results.with_suffix(".json"), result)
    lines = [
        f"# Item features: cost per training step ({args.model}, {data.name})",
        "",
        f"`{command}` — {stamp} — {machine_line()}",
        "",
        f"Median of {args.repeats} repeats of {args.steps} steps each, the two models alternating in one process.",
        "",
        "| items | seconds per step | ratio |",
        "|---|---:|---:|",
        f"| ids | {medians['ids']:.4f} | 1.00 |",
        f"| ids + attributes ({len(features.categorical[0].vocabulary)} values) | {medians['ids + attributes']:.4f} | {ratio:.2f} |",
        "",
        f"Goal: at most 1.15; {'met' if ratio <= 1.15 else 'not met'}.",
    ]
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
