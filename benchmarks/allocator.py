"""Training speed on the CPU with the C library's malloc against tcmalloc (LD_PRELOAD), same computation.

    python benchmarks/allocator.py --data-dir ../shared/data --dataset Beauty --models fearec bsarec --rounds 3

glibc serves every tensor above its mmap threshold (at most 32 MB) with fresh pages from the kernel, so each
large activation of a step is page-faulted in again; tcmalloc (Debian's libtcmalloc-minimal4) keeps and reuses
them. Each round trains every model for --steps steps from the same seed in fresh processes with 1 thread,
--concurrent of them at once (2 on a 2-core machine is how the benchmark lanes run), once per allocator, one
after the other, so that both see the same machine. Reported per model: the median over rounds of the seconds
per step (after 3 warm-up steps; the mean of the concurrent processes), the median of the per-round ratios, and
whether every process ended on the same loss (it does when the allocator changes nothing but speed). Writes
benchmarks/results/allocator.{json,md}; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bsarec.environment import provenance
from bsarec.io import atomic_write_json, atomic_write_text

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def child(model_name: str, dataset: str, data_dir: str | None, steps: int) -> None:
    import torch

    from bsarec.api import build_run_model
    from bsarec.config import resolve_config
    from bsarec.data.registry import dataset_name, resolve_dataset
    from bsarec.data.split import leave_one_out
    from bsarec.training.sampling import BatchMaker
    from bsarec.training.trainer import make_optimizer

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as the training loop does by default
    data = resolve_dataset(dataset, data_dir)
    config = resolve_config(model_name, dataset, dataset_name(dataset), "paper")
    split = leave_one_out(data, config.max_len)
    torch.manual_seed(0)
    model = build_run_model(config, data).train()
    make_batch, optimizer = BatchMaker(model, split, "cpu"), make_optimizer(model, config)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(split.train_targets), generator=generator)
    size = config.batch_size

    def step(i: int) -> float:
        loss = model.loss(make_batch(order[i * size : (i + 1) * size], generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    for i in range(3):
        step(i)
    started = time.perf_counter()
    for i in range(3, 3 + steps):
        loss = step(i)
    print(json.dumps({"seconds_per_step": (time.perf_counter() - started) / steps, "loss": loss}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["fearec", "bsarec"])
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=1, help="processes at once per allocator")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/allocator"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.dataset, args.data_dir, args.steps)
    if not Path(TCMALLOC).is_file():
        sys.exit(f"{TCMALLOC}: not found; install Debian's libtcmalloc-minimal4")
    allocators = {"glibc": {}, "tcmalloc": {"LD_PRELOAD": TCMALLOC}}
    runs: dict = {m: {a: [] for a in allocators} for m in args.models}
    for round_ in range(args.rounds):
        for model in args.models:
            for name, extra in allocators.items():
                command = [sys.executable, __file__, "--child", model, "--dataset", args.dataset]
                command += ["--steps", str(args.steps)] + (
                    ["--data-dir", args.data_dir] if args.data_dir else []
                )
                children = [
                    subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=os.environ | extra)
                    for _ in range(args.concurrent)
                ]
                outputs = [json.loads(c.communicate()[0].splitlines()[-1]) for c in children]
                if any(c.returncode for c in children):
                    sys.exit(f"{model} under {name}: a child process failed")
                mean = statistics.fmean(o["seconds_per_step"] for o in outputs)
                runs[model][name].append({"seconds_per_step": mean, "each_process": outputs})
                print(round_, model, name, runs[model][name][-1], flush=True)
    summary = {}
    for model, by_allocator in runs.items():
        ratios = [
            g["seconds_per_step"] / t["seconds_per_step"]
            for g, t in zip(by_allocator["glibc"], by_allocator["tcmalloc"], strict=True)
        ]
        summary[model] = {
            **{
                f"{name}_seconds_per_step": statistics.median(r["seconds_per_step"] for r in results)
                for name, results in by_allocator.items()
            },
            "speedup_median": statistics.median(ratios),
            "speedup_each_round": ratios,
            "same_loss": len(
                {o["loss"] for results in by_allocator.values() for r in results for o in r["each_process"]}
            )
            == 1,
        }
    meta = provenance()
    atomic_write_json(args.results.with_suffix(".json"), {"meta": meta, "runs": runs, "summary": summary})
    lines = [
        f"# glibc malloc against tcmalloc: training step on {args.dataset} (paper presets, 1 thread, "
        f"{args.concurrent} process(es) at once)",
        "",
        f"`{meta['command']}` — {meta['date']} — {meta['machine']}",
        "",
        f"Median over {args.rounds} rounds of {args.steps} steps, each in a fresh process, the allocators one "
        "after the other in every round.",
        "",
        "| model | glibc s/step | tcmalloc s/step | speed-up (median of rounds) | each round | same loss |",
        "|---|---|---|---|---|---|",
    ]
    for model, s in summary.items():
        lines.append(
            f"| {model} | {s['glibc_seconds_per_step']:.3f} | {s['tcmalloc_seconds_per_step']:.3f} | "
            f"{s['speedup_median']:.2f}x | {', '.join(f'{r:.2f}' for r in s['speedup_each_round'])} | "
            f"{'yes' if s['same_loss'] else 'NO'} |"
        )
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
