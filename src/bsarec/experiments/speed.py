"""`bsarec speed`: how fast a training step and a validation pass are, and how far from the hardware.

Two modes are measured side by side in one process, on the same batches:
- "ours": the library's training step (byte-cut dropout masks, last-position-only final block, fused Adam)
  and its vectorised evaluation;
- "straightforward": the same model and semantics written plainly, as the reference code does it
  (one Bernoulli draw per dropout element, the final block on every position, per-parameter Adam,
  a Python loop that zeroes each user's history scores before top-k).
Epoch time is the median seconds per step x steps per epoch. The reference code's own timings on this
kind of machine (reported by the project that set the speed targets, not re-measured here) are printed beside them.
"""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bsarec.api import build_run_model
from bsarec.config import RunConfig, resolve_config
from bsarec.data.dataset import SequenceDataset
from bsarec.data.registry import dataset_name, resolve_dataset
from bsarec.data.split import LeaveOneOutSplit, leave_one_out
from bsarec.environment import environment
from bsarec.evaluation.metrics import evaluate, metrics_from_ranks
from bsarec.models.layers import use_torch_dropout
from bsarec.models.losses import target_negative_bce
from bsarec.training.sampling import BatchMaker, sample_negatives
from bsarec.training.trainer import make_optimizer

# The reference code on this 2-core machine at the paper settings (seconds, and GB of memory for FEARec),
# as reported by the project that set the speed targets; not re-run here.
REFERENCE_CODE = {
    ("bsarec", "LastFM"): {"epoch": 33.0, "valid": 0.5},
    ("bsarec", "Beauty"): {"epoch": 190.0, "valid": 12.0},
    ("sasrec", "LastFM"): {"epoch": 27.0},
    ("duorec", "LastFM"): {"epoch": 95.0},
    ("fearec", "LastFM"): {"epoch": 253.0, "memory_gb": 5.2},
}
STRAIGHTFORWARD_MODELS = ("bsarec", "sasrec")


def straightforward_loss(model, inputs, targets, negatives, loss_name):
    h = model(inputs)[:, -1]  # every position through every block, then take the last
    table = model.item_embeddings
    if loss_name == "ce":
        return F.cross_entropy(h @ table.T, targets)
    return target_negative_bce(h, table, targets, negatives)


@torch.no_grad()
def straightforward_evaluate(model, evalset, batch: int = 256) -> dict[str, float]:
    model.eval()
    ranks = []
    for start in range(0, len(evalset), batch):
        stop = min(start + batch, len(evalset))
        scores = model(evalset.inputs[start:stop])[:, -1] @ model.item_embeddings.T
        for row in range(stop - start):  # the reference's per-user history masking, score 0
            lo, hi = int(evalset.history_offsets[start + row]), int(evalset.history_offsets[start + row + 1])
            scores[row, evalset.history_items[lo:hi]] = 0
        top = torch.topk(scores, 20, dim=1).indices
        hit = top == evalset.targets[start:stop, None]
        ranks.append(torch.where(hit.any(1), hit.float().argmax(1).double(), torch.tensor(float("inf"))))
    model.train()
    return metrics_from_ranks(torch.cat(ranks))


# matrix products of the shapes a BSARec step on Beauty runs (rows = batch x positions), and one large square
PEAK_SHAPES = ((2048, 2048, 2048), (12800, 64, 256), (12800, 256, 64), (12800, 64, 64), (256, 64, 12102))


def matmul_peak(dtype: torch.dtype = torch.float32, repeats: int = 5, seconds: float = 0.3) -> dict[str, Any]:
    """This machine's matrix-product throughput in GFLOP/s for `dtype` at the current thread count: the best
    of `repeats` timings of each of PEAK_SHAPES (each timing runs the product for about `seconds`). Its
    maximum is the practical limit a training step's GFLOP/s is measured against."""
    by_shape = {}
    for m, k, n in PEAK_SHAPES:
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        a @ b  # warm-up: the library picks its kernel
        started = time.perf_counter()
        a @ b
        reps = max(1, int(seconds / max(time.perf_counter() - started, 1e-6)))
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(reps):
                a @ b
            best = min(best, (time.perf_counter() - started) / reps)
        by_shape[f"{m}x{k}x{n}"] = 2 * m * k * n / best / 1e9
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "gflop_per_s": by_shape,
        "peak": max(by_shape.values()),
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(
    dataset: SequenceDataset,
    split: LeaveOneOutSplit,
    config: RunConfig,
    steps: int,
    repeats: int,
    straightforward: bool,
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_run_model(config, dataset)
    if straightforward:  # torch's Bernoulli dropout, as the reference code
        use_torch_dropout(model)
    make_batch = BatchMaker(model, split, "cpu")
    if straightforward:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, foreach=False)
    else:
        optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(split.train_targets), generator=generator)
    loss_name = config.resolved_loss
    batch = config.batch_size
    batches = [order[i : i + batch] for i in range(0, max(1, len(order) - batch + 1), batch)]

    def step(index):
        if straightforward:
            inputs, targets = split.train_inputs[index], split.train_targets[index]
            negatives = (
                sample_negatives(inputs, targets, split.n_items, generator) if loss_name == "bce" else None
            )
            loss = straightforward_loss(model, inputs, targets, negatives, loss_name)
            optimizer.zero_grad()
        else:
            loss = model.loss(make_batch(index, generator))  # the training loop's own batches
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for i in range(3):  # warm-up
        step(batches[i % len(batches)])
    step_times = []
    for r in range(repeats):
        started = time.perf_counter()
        for i in range(steps):
            step(batches[(r * steps + i) % len(batches)])
        step_times.append((time.perf_counter() - started) / steps)
    valid_times = []
    for _ in range(repeats):
        started = time.perf_counter()
        if straightforward:
            straightforward_evaluate(model, split.valid)
        else:
            evaluate(model, split.valid, config.history_mask, config.eval_batch_size)
        valid_times.append(time.perf_counter() - started)
    flops = _flops_per_step(step, batches[0])
    sec_per_step = statistics.median(step_times)
    steps_per_epoch = -(-len(split.train_targets) // batch)
    return {
        "seconds_per_step": sec_per_step,
        "samples_per_s": batch / sec_per_step,
        "seconds_per_epoch": sec_per_step * steps_per_epoch,
        "seconds_per_valid_pass": statistics.median(valid_times),
        "step_seconds_each_repeat": step_times,
        "valid_seconds_each_repeat": valid_times,
        "gflop_per_step": flops / 1e9,
        "achieved_gflop_per_s": flops / 1e9 / sec_per_step,
        "peak_rss_mb_so_far": _peak_rss_mb(),
    }


def _flops_per_step(step, index) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        step(index)
    return float(counter.get_total_flops())


def run_speed_benchmark(
    dataset: str,
    data_dir: str | None,
    model: str = "bsarec",
    preset: str | None = "paper",
    steps: int = 30,
    repeats: int = 3,
    straightforward: bool = True,
) -> dict[str, Any]:
    data = resolve_dataset(dataset, data_dir)
    name = dataset_name(dataset)
    config = resolve_config(model, dataset, name, preset)
    split = leave_one_out(data, config.max_len, train_samples=config.resolved("train_samples"))
    straightforward = straightforward and model in STRAIGHTFORWARD_MODELS
    result: dict[str, Any] = {
        "dataset": data.name,
        "model": model,
        "settings": config.model_settings() | {"batch_size": config.batch_size, "lr": config.lr},
        "train_samples": len(split.train_targets),
        "valid_users": len(split.valid),
        "steps_timed": steps,
        "repeats": repeats,
        "environment": environment(),
    }
    result["ours"] = measure(data, split, config, steps, repeats, straightforward=False)
    if straightforward:
        result["straightforward"] = measure(data, split, config, steps, repeats, straightforward=True)
        s, o = result["straightforward"], result["ours"]
        result["speedup_vs_straightforward"] = {
            "epoch": s["seconds_per_epoch"] / o["seconds_per_epoch"],
            "valid": s["seconds_per_valid_pass"] / o["seconds_per_valid_pass"],
        }
    ref = REFERENCE_CODE.get((model, data.name))
    if ref:
        result["reference_code_reported"] = ref
        result["speedup_vs_reference_code_reported"] = {
            "epoch": ref["epoch"] / result["ours"]["seconds_per_epoch"]
        }
        if "valid" in ref:
            result["speedup_vs_reference_code_reported"]["valid"] = (
                ref["valid"] / result["ours"]["seconds_per_valid_pass"]
            )
    return result
