"""The training loop, top to bottom: Adam, one loss per batch, validation every epoch, early stopping on
validation NDCG@20 (patience 10 by default), best weights restored at the end.

Ctrl-C stops after the current batch; the best weights seen so far are already on disk and are restored.
With a run directory, a checkpoint is written after every epoch (and every `checkpoint_steps` batches when
set): model, optimizer, best weights, the state of every random generator the loop uses, the epoch's sample
order and position, early stopping and history. `resume=True` continues from the newest one, and the run
ends exactly as if it had never stopped (same weights and metrics on CPU with the same thread count).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bsarec.config import RunConfig
from bsarec.data.same_target import SameTargetSampler
from bsarec.data.split import LeaveOneOutSplit
from bsarec.evaluation.metrics import evaluate
from bsarec.training.helpers import (
    Checkpointer,
    EarlyStopping,
    HistoryLog,
    optimizer_tensors,
    restore_optimizer,
    sample_negatives,
    save_weights,
)

log = logging.getLogger("bsarec")
WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_DIR = "checkpoints"


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


def _rng_tensors(generator: torch.Generator) -> dict[str, torch.Tensor]:
    tensors = {"rng.torch": torch.get_rng_state(), "rng.loop": generator.get_state()}
    if torch.cuda.is_available():
        tensors |= {f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    return tensors


def _restore_rng(tensors: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.loop"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def train(
    model: torch.nn.Module,
    split: LeaveOneOutSplit,
    config: RunConfig,
    run_dir: Path | None = None,
    progress: bool = True,
    candidates: torch.Tensor | None = None,
    resume: bool = False,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train `model` (already on its device); `candidates` are the validation's sampled negatives, if any;
    `on_epoch(epoch, valid_metrics)` is called after every validation (a tuner reports and prunes there)."""
    generator = torch.Generator().manual_seed(config.seed)  # sample order, negatives, positives
    optimizer = make_optimizer(model, config)
    stopper = EarlyStopping(config.patience)
    make_batch = BatchMaker(model, split, config.torch_device())
    checkpoints = Checkpointer(run_dir / CHECKPOINT_DIR, config.keep_checkpoints) if run_dir else None
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_valid: dict[str, float] = {}
    n_samples = len(split.train_targets)
    train_seconds = 0.0
    start_epoch, position, records = 0, None, []
    saved = checkpoints.latest() if resume and checkpoints else None
    if saved is not None:
        tensors, state = saved
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        best_state = {k[5:]: v.to(make_batch.device) for k, v in tensors.items() if k.startswith("best.")}
        restore_optimizer(optimizer, tensors, state["optimizer_groups"])
        _restore_rng(tensors, generator)
        stopper.restore(state["stopper"])
        best_valid, train_seconds, records = state["best_valid"], state["train_seconds"], state["history"]
        start_epoch = state["epoch"]
        if state["batch"] > 0:  # stopped inside an epoch: its order, position and running loss
            position = (
                tensors["order"],
                state["batch"],
                state["loss_sum"],
                state["seen"],
                state["epoch_seconds"],
            )
        log.info("resuming at epoch %d, batch %d", state["epoch"], state["batch"])
    elif resume:
        log.warning("no checkpoint in %s: training from the start", run_dir)
    history = HistoryLog(run_dir / "history.jsonl" if run_dir else None, records)

    def checkpoint(epoch: int, batch: int, order=None, loss_sum=0.0, seen=0, epoch_seconds=0.0) -> None:
        if checkpoints is None:
            return
        optim, groups = optimizer_tensors(optimizer)
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors |= {f"best.{k}": v for k, v in best_state.items()} | optim | _rng_tensors(generator)
        if order is not None:
            tensors["order"] = order
        state = {
            "epoch": epoch,
            "batch": batch,
            "loss_sum": loss_sum,
            "seen": seen,
            "epoch_seconds": epoch_seconds,
            "train_seconds": train_seconds,
            "stopper": stopper.state(),
            "best_valid": best_valid,
            "history": history.records,
            "optimizer_groups": groups,
        }
        checkpoints.save(epoch, batch, tensors, state)

    interrupted = False
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, config.epochs):
            if stopper.should_stop:  # resumed from the checkpoint of the epoch that stopped the run
                break
            model.train()
            started = time.perf_counter()
            if position is not None:
                order, first_batch, loss_sum, seen, earlier_seconds = position
                position = None
            else:
                order, first_batch, loss_sum, seen, earlier_seconds = (
                    torch.randperm(n_samples, generator=generator),
                    0,
                    0.0,
                    0,
                    0.0,
                )
            total_loss = torch.tensor(
                loss_sum, device=make_batch.device
            )  # summed on the device: no sync per step
            starts = range(first_batch * config.batch_size, n_samples, config.batch_size)
            bar = tqdm(starts, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="batch")
            for batch_number, start in enumerate(bar, start=first_batch):
                index = order[start : start + config.batch_size]
                loss = model.loss(**make_batch(index, generator))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.detach() * len(index)
                seen += len(index)
                if progress and batch_number % 20 == 0:
                    bar.set_postfix(
                        loss=f"{total_loss.item() / seen:.4f}",
                        samples_per_s=f"{seen / (time.perf_counter() - started):.0f}",
                    )
                done = batch_number + 1
                if (
                    config.checkpoint_steps
                    and done % config.checkpoint_steps == 0
                    and start + config.batch_size < n_samples
                ):
                    elapsed = earlier_seconds + time.perf_counter() - started
                    checkpoint(epoch, done, order, total_loss.item(), seen, elapsed)
            total_loss = total_loss.item()
            epoch_seconds = earlier_seconds + time.perf_counter() - started
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
            checkpoint(epoch + 1, 0)
            if on_epoch is not None:
                on_epoch(epoch, valid)
            if stopper.should_stop:
                log.info("early stop: no %s improvement for %d epochs", config.monitor, config.patience)
                break
    except KeyboardInterrupt:
        interrupted = True
        log.warning(
            "interrupted during epoch %d; restoring the best weights (epoch %d)", epoch, stopper.best_epoch
        )
    model.load_state_dict(best_state)
    if run_dir is not None and (stopper.best_epoch < 0 or saved is not None):
        save_weights(model, run_dir / WEIGHTS_FILE)  # the best weights on disk, whatever happened before
    return TrainResult(
        best_epoch=stopper.best_epoch,
        epochs=len(history.records),
        best_valid=best_valid,
        train_seconds=train_seconds,
        interrupted=interrupted,
        history=history.records,
    )
