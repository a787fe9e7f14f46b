"""Does flushing denormal floats to zero speed up CPU training, and are the denormals stored in the state?

    python benchmarks/denormal_flush.py benchmarks/runs/baselines/LastFM/caser/paper/seed43 \
        benchmarks/runs/baselines/LastFM/sasrec/paper/seed43

For each run directory, its newest training checkpoint (model and Adam state; the finished weights with a fresh
Adam when it has none) trains the same batches with `torch.set_flush_denormal` off and on, alternating, each
round from the same saved state. Reported: the median milliseconds per step of each mode, their ratio, and how
many denormal values (0 < |x| < 2**-126) the weights and Adam's two moments hold. The run directory's own
dataset copy is used. Writes benchmarks/results/denormal_flush.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

from bsarec.api import build_run_model
from bsarec.config import RunConfig
from bsarec.data.dataset import SequenceDataset
from bsarec.data.split import leave_one_out
from bsarec.environment import provenance
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.training.checkpoint import Checkpointer, unflatten
from bsarec.training.numerics import cpu_denormal_mode
from bsarec.training.sampling import BatchMaker
from bsarec.training.trainer import LossOf, make_optimizer

SMALLEST_NORMAL = torch.finfo(torch.float32).tiny


def count_denormals(tensors: dict[str, torch.Tensor], keep: Callable[[str], bool]) -> tuple[int, int]:
    """(denormal values, all values) over the float tensors whose name `keep` accepts."""
    denormal = total = 0
    for name, value in tensors.items():
        if keep(name) and value.is_floating_point():
            denormal += int(((value != 0) & (value.abs() < SMALLEST_NORMAL)).sum())
            total += value.numel()
    return denormal, total


def measure(run_dir: Path, steps: int, repeats: int) -> dict:
    config = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    dataset = SequenceDataset.load(run_dir / "dataset")
    split = leave_one_out(dataset, config.max_len, config.padding)
    saved = Checkpointer(run_dir / "checkpoints", 1).newest()
    if saved is not None:
        _, tensors, state = saved
        source = f"checkpoint after epoch {state['epoch']}"
    else:
        tensors = {f"model.{k}": v for k, v in load_file(run_dir / "model.safetensors").items()}
        state, source = None, "final weights, fresh Adam"
    torch.manual_seed(config.seed)
    model = build_run_model(config, dataset)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    model.train()
    generator = torch.Generator().manual_seed(config.seed)
    batch_size = config.batch_size
    order = torch.randperm(len(split.train_targets), generator=generator)[: steps * batch_size]
    make_batch = BatchMaker(model, split, "cpu")
    batches = [make_batch(order[i * batch_size : (i + 1) * batch_size], generator) for i in range(steps)]
    compute_loss = LossOf(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def one_round(flush: bool) -> float:
        model.load_state_dict(start)
        optimizer = make_optimizer(model, config)
        if state is not None:
            optimizer.load_state_dict(unflatten(state["optimizer"], tensors))
        with cpu_denormal_mode(flush):
            began = time.perf_counter()
            for batch in batches:
                loss = compute_loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            seconds = time.perf_counter() - began
        return seconds / steps * 1000

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for flush in (False, True):
            times[flush].append(one_round(flush))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    return {
        "run": str(run_dir),
        "model": config.model,
        "dataset": config.dataset,
        "source": source,
        "ms_per_step_normal": off,
        "ms_per_step_flushed": on,
        "speed_up": off / on,
        "denormal_weights": count_denormals(tensors, lambda name: name.startswith("model.")),
        "denormal_adam_exp_avg": count_denormals(tensors, adam_moment("exp_avg")),
        "denormal_adam_exp_avg_sq": count_denormals(tensors, adam_moment("exp_avg_sq")),
        "all_ms_normal": times[False],
        "all_ms_flushed": times[True],
    }


def adam_moment(key: str) -> Callable[[str], bool]:
    """Names of one Adam moment in a checkpoint: optimizer.state.<param index>.<key>."""
    return lambda name: name.startswith("optimizer.") and name.endswith(f".{key}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/denormal_flush"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for run_dir in args.runs:
        row = measure(run_dir, args.steps, args.repeats)
        rows.append(row)
        print(
            row["model"],
            row["dataset"],
            f"{row['ms_per_step_normal']:.0f} ms",
            f"{row['ms_per_step_flushed']:.0f} ms",
            f"x{row['speed_up']:.1f}",
            flush=True,
        )
    meta = {**provenance(), "threads": args.threads}
    atomic_write_json(args.results.with_suffix(".json"), {"meta": meta, "results": rows})
    lines = [
        "# Denormal floats and CPU training speed",
        "",
        f"`{meta['command']}` — {meta['date']} — {meta['machine']}, {args.threads} torch thread(s)",
        "",
        f"Median ms per training step over {args.repeats} alternating repeats of {args.steps} steps, from the same"
        " saved state; denormals counted as 0 < |x| < 2^-126 (share of all values).",
        "",
        "| run | state | normal ms/step | flushed ms/step | speed-up | denormal weights | denormal Adam m | denormal Adam v |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        shares = [
            f"{d:,} ({d / max(t, 1):.1%})"
            for d, t in (
                row["denormal_weights"],
                row["denormal_adam_exp_avg"],
                row["denormal_adam_exp_avg_sq"],
            )
        ]
        lines.append(
            f"| {row['model']} {row['dataset']} `{row['run']}` | {row['source']} | {row['ms_per_step_normal']:.0f} |"
            f" {row['ms_per_step_flushed']:.0f} | x{row['speed_up']:.1f} | " + " | ".join(shares) + " |"
        )
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
