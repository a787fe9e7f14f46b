"""What an option costs per training step, side by side in one process: item attributes (BSARec on Beauty
with and without its S3-Rec attributes; goal: at most 1.15) or bf16 autocast (against fp32).

    python benchmarks/step_cost.py --compare attributes --data-dir ../shared/data
    python benchmarks/step_cost.py --compare bf16 --dataset LastFM --data-dir ../shared/data

The two variants alternate, `steps` steps each per repeat, on the training loop's own batches; the result is
the median seconds per step of each and their ratio. Writes benchmarks/results/step_cost_COMPARE.{json,md}.
Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
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
from bsarec.training.numerics import training_autocast
from bsarec.training.sampling import BatchMaker
from bsarec.training.trainer import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compare", choices=("attributes", "bf16"), default="attributes")
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--model", default="bsarec")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = args.results or Path(f"benchmarks/results/step_cost_{args.compare}")
    data = resolve_dataset(args.dataset, args.data_dir)
    config = resolve_config(args.model, args.dataset, data.name, "paper")
    split = leave_one_out(data, config.max_len)
    if args.compare == "attributes":
        features = resolve_item_features("attributes", data, args.data_dir)
        detail = f"{features.names[0]}: {len(features.categorical[0].vocabulary)} values"
        variants = {"ids": (config, None), "ids + attributes": (config, features)}
    else:
        detail = "autocast of the training step"
        variants = {
            "fp32": (config.updated(precision="fp32"), None),
            "bf16": (config.updated(precision="bf16"), None),
        }
    order = torch.randperm(len(split.train_targets), generator=torch.Generator().manual_seed(0))
    size = config.batch_size
    batches = [order[i : i + size] for i in range(0, len(order) - size, size)]
    setups = {}
    for name, (variant, features) in variants.items():
        torch.manual_seed(0)
        model = build_run_model(variant, data, features, split).train()
        setups[name] = (variant, model, make_optimizer(model, variant), BatchMaker(model, split, "cpu"))
    generator = torch.Generator().manual_seed(1)

    def run_steps(name: str, first: int) -> float:
        variant, model, optimizer, make_batch = setups[name]
        started = time.perf_counter()
        for i in range(args.steps):
            with training_autocast(variant.precision, "cpu"):
                loss = model.loss(make_batch(batches[(first + i) % len(batches)], generator))
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
    base, other = list(medians)
    ratio = medians[other] / medians[base]
    command = "python benchmarks/step_cost.py " + " ".join(sys.argv[1:])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result = {
        "command": command,
        "date": stamp,
        "machine": machine_line(),
        "dataset": data.name,
        "model": args.model,
        "compare": args.compare,
        "detail": detail,
        "seconds_per_step": medians,
        "seconds_each_repeat": times,
        "ratio": ratio,
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results.with_suffix(".json"), result)
    lines = [
        f"# Cost per training step: {other} against {base} ({args.model}, {data.name})",
        "",
        f"`{command}` — {stamp} — {machine_line()}",
        "",
        f"Median of {args.repeats} repeats of {args.steps} steps each, the two alternating in one process; {detail}.",
        "",
        "| variant | seconds per step | ratio |",
        "|---|---:|---:|",
        f"| {base} | {medians[base]:.4f} | 1.00 |",
        f"| {other} | {medians[other]:.4f} | {ratio:.2f} |",
    ]
    atomic_write_text(results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
