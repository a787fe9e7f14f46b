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
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from bsarec.config import RunConfig
from bsarec.data.same_target import SameTargetSampler
from bsarec.data.split import LeaveOneOutSplit
from bsarec.distributed import SINGLE, ProcessGroup
from bsarec.evaluation.metrics import evaluate
from bsarec.training.helpers import (
    HISTORY_FILE,
    Checkpointer,
    EarlyStopping,
    HistoryLog,
    SoftmaxSampler,
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
    user rows or same-target positives that the model declares it needs, and the shared items of sampled
    softmax; all on the model's device. Everything is drawn for the whole batch, so that a process of a
    multi-process run, which keeps only `rows` of it, gets exactly its share of the single-process batch."""

    def __init__(
        self,
        model: torch.nn.Module,
        split: LeaveOneOutSplit,
        device: str,
        sampler: SoftmaxSampler | None = None,
    ):
        self.split, self.device, self.sampler = split, device, sampler
        self.negatives = getattr(model, "needs_negatives", False)
        self.users = getattr(model, "needs_users", False)
        self.positives = (
            SameTargetSampler(split.train_inputs, split.train_targets)
            if getattr(model, "needs_positives", False)
            else None
        )

    def __call__(
        self, index: torch.Tensor, generator: torch.Generator, rows: tuple[int, int] | None = None
    ) -> dict[str, torch.Tensor]:
        split = self.split
        batch = {"inputs": split.train_inputs[index], "targets": split.train_targets[index]}
        if self.negatives:
            batch["negatives"] = sample_negatives(batch["inputs"], batch["targets"], split.n_items, generator)
        if self.users:
            batch["users"] = split.train_users[index]
        if self.positives is not None:
            batch["positives"] = split.train_inputs[self.positives.sample(index, generator)]
        if rows is not None:
            batch = {k: v[rows[0] : rows[1]] for k, v in batch.items()}
        if self.sampler is not None:  # shared by every sample of the batch
            batch["sampled_items"], batch["sampled_log_expected"] = self.sampler(generator)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}


class LossOf(torch.nn.Module):
    """The model's training loss as a module's forward: DistributedDataParallel synchronises gradients only
    for work done inside its module's forward. A process whose share of a (last, short) batch is empty still
    takes part, with a zero loss that touches every parameter."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if len(batch["targets"]) == 0:
            return sum(p.sum() for p in self.model.parameters()) * 0.0
        return self.model.loss(**batch)


def _rng_tensors(generator: torch.Generator, group: ProcessGroup) -> dict[str, torch.Tensor]:
    """The loop's generator (the same in every process) and each process's global generator (dropout)."""
    states = group.gather_states(torch.get_rng_state())
    tensors = {"rng.torch": states[0], "rng.loop": generator.get_state()}
    tensors |= {f"rng.torch.rank{rank}": s for rank, s in enumerate(states) if rank > 0}
    if torch.cuda.is_available():
        tensors |= {f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    return tensors


def _restore_rng(tensors: dict[str, torch.Tensor], generator: torch.Generator, group: ProcessGroup) -> None:
    torch.set_rng_state(tensors.get(f"rng.torch.rank{group.rank}", tensors["rng.torch"]))
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
    group: ProcessGroup = SINGLE,
) -> TrainResult:
    """Train `model` (already on its device); `candidates` are the validation's sampled negatives, if any;
    `on_epoch(epoch, valid_metrics)` is called after every validation (a tuner reports and prunes there).
    Under torchrun, `group` is this process's place in the process group (see bsarec/distributed.py)."""
    generator = torch.Generator().manual_seed(config.seed)  # sample order, negatives, positives
    optimizer = make_optimizer(model, config)
    stopper = EarlyStopping(config.patience)
    sampler = None
    if config.softmax_negatives:
        sampler = SoftmaxSampler(
            split.n_items, config.softmax_negatives, config.softmax_sampler, split.train_targets
        )
    make_batch = BatchMaker(model, split, config.torch_device(), sampler)
    compute_loss = LossOf(model)
    if group.enabled:
        cuda = group.device.startswith("cuda")
        compute_loss = DistributedDataParallel(compute_loss, device_ids=[group.device] if cuda else None)
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
        _restore_rng(tensors, generator, group)
        stopper.restore(state["stopper"])
        best_valid, train_seconds, records = state["best_valid"], state["train_seconds"], state["history"]
        start_epoch = state["epoch"]
        if state["batch"] > 0:  # stopped inside an epoch: its order, position and running loss
            position = (
                tensors["order"],
                state["batch"],
                state["loss_sum"] if group.is_main else 0.0,  # the sum over processes, counted once
                state["seen"],
                state["epoch_seconds"],
            )
        log.info("resuming at epoch %d, batch %d", state["epoch"], state["batch"])
    elif resume:
        log.warning("no checkpoint in %s: training from the start", run_dir)
    group.barrier()  # every process has read the checkpoint before rank 0 writes the next one
    history = HistoryLog(run_dir / HISTORY_FILE if run_dir and group.is_main else None, records)

    def checkpoint(epoch: int, batch: int, order=None, loss_sum=None, seen=0, epoch_seconds=0.0) -> None:
        if checkpoints is None:
            return
        rng = _rng_tensors(generator, group)  # collective: every process takes part
        loss_sum = group.sum(loss_sum).item() if loss_sum is not None else 0.0
        if not group.is_main:
            return
        optim, groups = optimizer_tensors(optimizer)
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors |= {f"best.{k}": v for k, v in best_state.items()} | optim | rng
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
                rows = group.bounds(len(index))  # the whole batch in a single process
                loss = compute_loss(make_batch(index, generator, rows))
                share = (rows[1] - rows[0]) / len(index)
                optimizer.zero_grad(set_to_none=True)
                # DDP averages the processes' gradients; weighting each share's mean loss by its size x
                # processes makes that average the gradient of the whole batch's mean loss
                (loss * share * group.world).backward()
                optimizer.step()
                total_loss += loss.detach() * len(index) * share
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
                    checkpoint(epoch, done, order, total_loss, seen, elapsed)
            total_loss = group.sum(total_loss).item()
            epoch_seconds = earlier_seconds + time.perf_counter() - started
            train_seconds += epoch_seconds
            eval_started = time.perf_counter()
            valid = evaluate(
                model, split.valid, config.history_mask, config.eval_batch_size, candidates, group
            )
            record = {
                "epoch": epoch,
                "loss": total_loss / max(seen, 1),
                "train_seconds": epoch_seconds,
                "samples_per_s": seen / epoch_seconds,
                "valid_seconds": time.perf_counter() - eval_started,
                **{f"valid_{k}": v for k, v in valid.items()},
            }
            improved = group.broadcast_flag(stopper.update(valid[config.monitor], epoch))
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
                if run_dir is not None and group.is_main:
                    save_weights(model, run_dir / WEIGHTS_FILE)
            checkpoint(epoch + 1, 0)
            if on_epoch is not None:
                on_epoch(epoch, valid)
            if group.broadcast_flag(stopper.should_stop):
                log.info("early stop: no %s improvement for %d epochs", config.monitor, config.patience)
                break
    except KeyboardInterrupt:
        interrupted = True
        log.warning(
            "interrupted during epoch %d; restoring the best weights (epoch %d)", epoch, stopper.best_epoch
        )
    model.load_state_dict(best_state)
    if run_dir is not None and group.is_main and (stopper.best_epoch < 0 or saved is not None):
        save_weights(model, run_dir / WEIGHTS_FILE)  # the best weights on disk, whatever happened before
    return TrainResult(
        best_epoch=stopper.best_epoch,
        epochs=len(history.records),
        best_valid=best_valid,
        train_seconds=train_seconds,
        interrupted=interrupted,
        history=history.records,
    )
