"""Where a training step's time goes, per model: `torch.profiler` over the training loop's own steps (forward,
loss, backward, Adam), summarised as the operators that take the most time, with the step's GFLOP and its
GFLOP/s as a share of this machine's fp32 matrix-product peak (benchmarks/results/matmul_peak.json).

    python benchmarks/profile_step.py --data-dir ../shared/data --dataset Beauty [--models bsarec sasrec]

Writes benchmarks/results/profile_step_DATASET.{json,md}. Run it on a quiet machine (about 5 minutes for all
models on Beauty at 2 threads).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from bsarec.api import build_run_model
from bsarec.config import resolve_config
from bsarec.data.registry import resolve_dataset
from bsarec.data.split import leave_one_out
from bsarec.environment import provenance
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.models import MODELS
from bsarec.training.numerics import training_autocast
from bsarec.training.sampling import BatchMaker
from bsarec.training.trainer import make_optimizer

RESULTS = Path(__file__).parent / "results"
TOP = 8  # operators listed per model


def profile_model(model_name: str, dataset, args) -> dict:
    config = resolve_config(model_name, args.dataset, dataset.name, "paper")
    split = leave_one_out(dataset, config.max_len, train_samples=config.resolved("train_samples"))
    torch.manual_seed(0)
    model = build_run_model(config, dataset)
    make_batch = BatchMaker(model, split, "cpu")
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(split.train_targets), generator=generator)
    batch = config.batch_size
    n_batches = max(1, len(order) // batch)

    def step(i: int) -> None:
        with training_autocast(args.precision, "cpu"):
            loss = model.loss(
                make_batch(order[(i % n_batches) * batch : (i % n_batches + 1) * batch], generator)
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for i in range(3):
        step(i)
    times = []
    for i in range(args.steps):
        started = time.perf_counter()
        step(3 + i)
        times.append(time.perf_counter() - started)
    counter = FlopCounterMode(display=False)
    with counter:
        step(0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.profiled):
            step(i)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    seconds = statistics.median(times)
    gflop = counter.get_total_flops() / 1e9
    return {
        "seconds_per_step": seconds,
        "steps_per_epoch": -(-len(split.train_targets) // batch),
        "gflop_per_step": gflop,
        "gflop_per_s": gflop / seconds,
        "top": [
            {"op": e.key, "share": e.self_cpu_time_total / total, "calls_per_step": e.count / args.profiled}
            for e in events[:TOP]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--profiled", type=int, default=5)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = resolve_dataset(args.dataset, args.data_dir)
    peak_file = RESULTS / "matmul_peak.json"
    peak = (
        json.loads(peak_file.read_text())["threads"][str(args.threads)]["fp32"]["peak"]
        if peak_file.is_file()
        else None
    )
    found = {}
    for name in args.models:
        found[name] = profile_model(name, dataset, args)
        print(name, f"{found[name]['seconds_per_step'] * 1000:.1f} ms/step", flush=True)
    stem = f"profile_step_{dataset.name}" + ("_bf16" if args.precision == "bf16" else "")
    atomic_write_json(
        RESULTS / f"{stem}.json", {**provenance(), "fp32_peak_gflop_per_s": peak, "models": found}
    )
    lines = [
        f"# Where a training step's time goes: {dataset.name}, {args.precision}, {args.threads} threads",
        "",
        f"`{provenance()['command']}` on {provenance()['machine']}.",
        "",
        "Median of the step's wall time over the timed steps (paper preset, the training loop's own batches and "
        "Adam); GFLOP counted by torch's FlopCounterMode; the share of the fp32 matrix-product peak "
        f"({peak:.0f} GFLOP/s, `benchmarks/matmul_peak.py`); then the operators with the most self time "
        "under torch.profiler (share of the profiled time, calls per step)."
        if peak
        else "",
        "",
        "| model | ms/step | steps/epoch | s/epoch | GFLOP/step | GFLOP/s | of fp32 peak | where the time goes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in found.items():
        top = ", ".join(f"{t['op'].removeprefix('aten::')} {100 * t['share']:.0f}%" for t in r["top"][:6])
        share = f"{100 * r['gflop_per_s'] / peak:.0f}%" if peak else "-"
        lines.append(
            f"| {name} | {1000 * r['seconds_per_step']:.1f} | {r['steps_per_epoch']} | "
            f"{r['seconds_per_step'] * r['steps_per_epoch']:.0f} | {r['gflop_per_step']:.2f} | "
            f"{r['gflop_per_s']:.0f} | {share} | {top} |"
        )
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
