"""Training speed on one GPU: eager against graph-captured steps, single against packed runs, a full BSARec
Beauty run, and (with --grid) the LastFM + Beauty paper grid. One prepared script that writes its results
as it goes (benchmarks/results/gpu.{json,md}), so a cut-off run keeps what it measured.

    python benchmarks/gpu.py --data-dir ../shared/data                 # steps + a full Beauty run
    python benchmarks/gpu.py --data-dir ../shared/data --grid          # + the 8 models x 2 datasets x 3 seeds grid
    python benchmarks/gpu.py --device cpu --quick                      # a smoke test of the script itself

Samples/s: the median of `--repeats` timings of `--steps` steps after a warm-up (compiled modes compile in
the warm-up), the device synchronised around each timing. "packed N" trains N runs in one batched model
(training/packed.py) and counts the samples of all N.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bsarec.api import SequentialRecommender, build_run_model
from bsarec.config import resolve_config
from bsarec.data.registry import resolve_dataset
from bsarec.data.split import leave_one_out
from bsarec.distributed import SINGLE
from bsarec.environment import machine_line
from bsarec.experiments.grid import run_benchmark
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.training.packed import PackedStep
from bsarec.training.sampling import BatchMaker, softmax_sampler
from bsarec.training.trainer import loss_module, make_optimizer


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_rate(model_name: str, data, mode: str, pack: int, args) -> float:
    """Samples per second of `pack` runs (1: an ordinary run) in `mode` ("eager" or "graphs")."""
    configs = [
        resolve_config(
            model_name,
            data.name,
            data.name,
            "paper",
            {"device": args.device, "compile": mode == "graphs"},
            seed=42 + i,
        )
        for i in range(pack)
    ]
    split = leave_one_out(data, configs[0].max_len, train_samples=configs[0].resolved("train_samples"))
    models = []
    for config in configs:
        torch.manual_seed(config.seed)
        models.append(build_run_model(config, data).to(args.device).train())
    makers = [
        BatchMaker(m, split, args.device, softmax_sampler(c, split))
        for m, c in zip(models, configs, strict=True)
    ]
    generators = [torch.Generator().manual_seed(c.seed) for c in configs]
    order = torch.randperm(len(split.train_targets), generator=torch.Generator().manual_seed(0))
    size = configs[0].batch_size
    batches = [order[i : i + size] for i in range(0, len(order) - size + 1, size)]
    if pack == 1:
        compute = loss_module(models[0], SINGLE, configs[0].compile)
        optimizer = make_optimizer(models[0], configs[0])

        def one(index):
            loss = compute(makers[0](index, generators[0]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    else:
        step = PackedStep(models, configs)
        active = torch.ones(pack, dtype=torch.bool, device=args.device)

        def one(index):
            parts = [make(index, g) for make, g in zip(makers, generators, strict=True)]
            step({k: torch.stack([p[k] for p in parts]) for k in parts[0]}, active)

    for i in range(args.warmup):
        one(batches[i % len(batches)])
    times = []
    for r in range(args.repeats):
        synchronise(args.device)
        started = time.perf_counter()
        for i in range(args.steps):
            one(batches[(r * args.steps + i) % len(batches)])
        synchronise(args.device)
        times.append(time.perf_counter() - started)
    return pack * size * args.steps / statistics.median(times)


def write(results: dict[str, Any], path: Path) -> None:
    atomic_write_json(path.with_suffix(".json"), results)
    lines = [
        "# Training speed on one GPU",
        "",
        f"`{results['command']}` — {results['date']} — {results['machine']} — {results['device_name']}",
        "",
        "| model | dataset | mode | runs packed | samples/s |",
        "|---|---|---|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['dataset']} | {r['mode']} | {r['pack']} | {r['samples_per_s']:.0f} |"
        for r in results["steps"]
    ]
    for name in ("full_run", "grid"):
        if name in results:
            lines += ["", f"**{name.replace('_', ' ')}**: " + json.dumps(results[name])]
    atomic_write_text(path.with_suffix(".md"), "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["bsarec", "sasrec", "fearec"])
    parser.add_argument("--packs", nargs="+", type=int, default=[1, 3, 8, 24])
    parser.add_argument("--modes", nargs="+", default=["eager", "graphs"])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--grid", action="store_true", help="also time the LastFM + Beauty paper grid")
    parser.add_argument("--quick", action="store_true", help="synthetic data, few steps: a smoke test")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/gpu"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats, args.warmup = 2, 1, 1
    data = resolve_dataset("synthetic" if args.quick else "Beauty", args.data_dir)
    results: dict[str, Any] = {
        "command": "python benchmarks/gpu.py " + " ".join(a for a in __import__("sys").argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_line(),
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "steps": [],
    }
    for model in args.models:
        for mode in args.modes:
            for pack in args.packs:
                if mode == "graphs" and pack > 1:
                    continue  # packed runs are eager (vmap); the graphs mode is one run's captured step
                rate = step_rate(model, data, mode, pack, args)
                results["steps"].append(
                    {"model": model, "dataset": data.name, "mode": mode, "pack": pack, "samples_per_s": rate}
                )
                print(results["steps"][-1], flush=True)
                write(results, args.results)
    config = resolve_config(
        "bsarec", data.name, data.name, "paper", {"device": args.device}, epochs=2 if args.quick else None
    )
    started = time.perf_counter()
    rec = SequentialRecommender(config=config).fit(data, progress=False)
    results["full_run"] = {
        "model": "bsarec",
        "dataset": data.name,
        "seconds": round(time.perf_counter() - started, 1),
        "train_seconds": round(rec.metrics["train_seconds"], 1),
        "epochs": rec.metrics["epochs"],
        "test_NDCG@10": rec.metrics["test"]["NDCG@10"],
    }
    print(results["full_run"], flush=True)
    write(results, args.results)
    if args.grid:
        started = time.perf_counter()
        models = ["bsarec", "caser", "gru4rec", "sasrec", "bert4rec", "fmlprec", "duorec", "fearec"]
        run_benchmark(
            models,
            ["LastFM", "Beauty"],
            [42, 43, 44],
            runs="benchmarks/runs/gpu_grid",
            output=str(args.results.parent / "gpu_grid"),
            device=args.device,
            data_dir=args.data_dir,
            pack=3,
            jobs=1,
            command="python benchmarks/gpu.py --grid",
        )
        results["grid"] = {"cells": 48, "seconds": round(time.perf_counter() - started, 1), "pack": 3}
        write(results, args.results)


if __name__ == "__main__":
    main()
