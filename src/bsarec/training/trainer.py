"""The training loop, top to bottom: Adam, one loss per batch, validation every epoch, early stopping on
validation NDCG@20 (patience 10 by default), best weights restored at the end.

Ctrl-C stops after the current batch; the best weights seen so far are already on disk and are restored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bsarec.config import RunConfig
from bsarec.data.same_target import SameTargetSampler
from bsarec.data.split import LeaveOneOutSplit
from bsarec.evaluation.metrics import evaluate
from bsarec.training.helpers import EarlyStopping, HistoryLog, sample_negatives, save_weights

log = logging.getLogger("bsarec")
WEIGHTS_FILE = "model.safetensors"


@dataclass
class TrainResult:
    best_epoch: int
    epochs: int
    best_valid: dict[str, float]
    train_seconds: float
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def make_optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """Adam (betas 0.9, 0.999). The fused kernel does the same arithmetic in one pass over the parameters."""
    kwargs = {"lr": config.lr, "betas": (0.9, 0.999), "weight_decay": config.weight_decay}
    try:
        return torch.optim.Adam(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError):  # older torch or a device without the fused kernel
        return torch.optim.Adam(model.parameters(), **kwargs)


class BatchMaker:
    """What a model's loss takes for a batch of sample indices: inputs and targets, plus the sampled negatives,
    user rows or same-target positives that the model declares it needs; all on the model's device."""

    def __init__(self, model: torch.nn.Module, split: LeaveOneOutSplit, device: str):
        self.split, self.device = split, device
        self.negatives = getattr(model, "needs_negatives", False)
        self.users = getattr(model, "needs_users", False)
        self.positives = (
            SameTargetSampler(split.train_inputs, split.train_targets)
            if getattr(model, "needs_positives", False)
            else None
        )

    def __call__(self, index: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        split = self.split
        batch = {"inputs": split.train_inputs[index], "targets": split.train_targets[index]}
        if self.negatives:
            batch["negatives"] = sample_negatives(batch["inputs"], batch["targets"], split.n_items, generator)
        if self.users:
            batch["users"] = split.train_users[index]
        if self.positives is not None:
            batch["positives"] = split.train_inputs[self.positives.sample(index, generator)]
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}


def train(
    model: torch.nn.Module,
    split: LeaveOneOutSplit,
    config: RunConfig,
    run_dir: Path | None = None,
    progress: bool = True,
    candidates: torch.Tensor | None = None,
) -> TrainResult:
    """Train `model` (already on its device); `candidates` are the validation's sampled negatives, if any."""
    generator = torch.Generator().manual_seed(config.seed)  # sample order, negatives, positives
    optimizer = make_optimizer(model, config)
    stopper = EarlyStopping(config.patience)
    history = HistoryLog(run_dir / "history.jsonl" if run_dir else None)
    make_batch = BatchMaker(model, split, config.torch_device())
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_valid: dict[str, float] = {}
    n_samples = len(split.train_targets)
    train_seconds = 0.0
    interrupted = False
    epoch = -1
    try:
        for epoch in range(config.epochs):
            model.train()
            started = time.perf_counter()
            order = torch.randperm(n_samples, generator=generator)
            total_loss = torch.zeros((), device=make_batch.device)  # summed on the device: no sync per step
            seen = 0
            bar = tqdm(
                range(0, n_samples, config.batch_size),
                desc=f"epoch {epoch}",
                leave=False,
                disable=not progress,
                unit="batch",
            )
            for step, start in enumerate(bar):
                index = order[start : start + config.batch_size]
                loss = model.loss(**make_batch(index, generator))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.detach() * len(index)
                seen += len(index)
                if progress and step % 20 == 0:
                    bar.set_postfix(
                        loss=f"{total_loss.item() / seen:.4f}",
                        samples_per_s=f"{seen / (time.perf_counter() - started):.0f}",
                    )
            total_loss = total_loss.item()
            epoch_seconds = time.perf_counter() - started
            train_seconds += epoch_seconds
            eval_started = time.perf_counter()
            valid = evaluate(model, split.valid, config.history_mask, config.eval_batch_size, candidates)
            record = {
                "epoch": epoch,
                "loss": total_loss / max(seen, 1),
                "train_seconds": epoch_seconds,
                "samples_per_s": seen / epoch_seconds,
                "valid_seconds": time.perf_counter() - eval_started,
                **{f"valid_{k}": v for k, v in valid.items()},
            }
            improved = stopper.update(valid[config.monitor], epoch)
            record["best"] = improved
            history.append(record)
            log.info(
                "epoch %d loss %.4f valid %s %.4f HR@10 %.4f (%.1fs, %.0f samples/s)%s",
                epoch,
                record["loss"],
                config.monitor,
                valid[config.monitor],
                valid["HR@10"],
                epoch_seconds,
                record["samples_per_s"],
                " *" if improved else "",
            )
            if improved:
                best_valid = valid
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if run_dir is not None:
                    save_weights(model, run_dir / WEIGHTS_FILE)
            if stopper.should_stop:
                log.info("early stop: no %s improvement for %d epochs", config.monitor, config.patience)
                break
    except KeyboardInterrupt:
        interrupted = True
        log.warning(
            "interrupted during epoch %d; restoring the best weights (epoch %d)", epoch, stopper.best_epoch
        )
    model.load_state_dict(best_state)
    if run_dir is not None and stopper.best_epoch < 0:
        save_weights(model, run_dir / WEIGHTS_FILE)  # no epoch finished: keep the initial weights usable
    return TrainResult(
        best_epoch=stopper.best_epoch,
        epochs=len(history.records),
        best_valid=best_valid,
        train_seconds=train_seconds,
        interrupted=interrupted,
        history=history.records,
    )
