"""The training loop, top to bottom: Adam, one loss per batch, validation every epoch, early stopping on
validation NDCG@20 (patience 10 by default), best weights restored at the end.

Ctrl-C stops after the current batch; the best weights seen so far are already on disk and are restored.
With a checkpointer, a checkpoint is written after every epoch (and every `checkpoint_steps` batches when
set) with the run's named parts: model, optimizer, TrainState, best weights (training/state.py) and every random
generator the loop uses. `resume=True` continues from the newest one, and the run ends exactly as if it had
never stopped (same weights and metrics on CPU with the same thread count). `finish_epoch`, the end of an
epoch, is shared with packed runs (training/packed.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from bsarec.config import RunConfig
from bsarec.data.split import LeaveOneOutSplit
from bsarec.distributed import SINGLE, ProcessGroup
from bsarec.errors import NonFiniteError
from bsarec.evaluation.metrics import evaluate
from bsarec.models import SequentialModel
from bsarec.training.checkpoint import Checkpoint, Checkpointer, RandomState
from bsarec.training.numerics import training_autocast, warn_if_slow_precision
from bsarec.training.recorder import EpochRecorder, epoch_record
from bsarec.training.sampling import BatchMaker, softmax_sampler
from bsarec.training.state import BestWeights, TrainState

log = logging.getLogger("bsarec")
REPORT_SECONDS = 30.0  # how often a long epoch without a progress bar logs a line


@dataclass
class TrainResult:
    best_epoch: int
    epochs: int
    best_valid: dict[str, float]
    train_seconds: float
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, state: TrainState, interrupted: bool = False) -> TrainResult:
        return cls(
            best_epoch=state.stopper.best_epoch,
            epochs=len(state.history),
            best_valid=state.best_valid,
            train_seconds=state.train_seconds,
            interrupted=interrupted,
            history=state.history,
        )


def make_optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """Adam (betas 0.9, 0.999). The fused kernel does the same arithmetic in one pass over the parameters."""
    kwargs = {"lr": config.lr, "betas": (0.9, 0.999), "weight_decay": config.weight_decay}
    try:
        return torch.optim.Adam(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError):  # older torch or a device without the fused kernel
        return torch.optim.Adam(model.parameters(), **kwargs)


class LossOf(torch.nn.Module):
    """The model's training loss as a module's forward: DistributedDataParallel synchronises gradients only
    for work done inside its module's forward. A process whose share of a (last, short) batch is empty still
    takes part, with a zero loss that touches every parameter."""

    def __init__(self, model: SequentialModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if len(batch["targets"]) == 0:
            return sum(p.sum() for p in self.model.parameters()) * 0.0
        return self.model.loss(batch)


def loss_module(model: SequentialModel, group: ProcessGroup, compile: bool = False) -> torch.nn.Module:
    """The loss as a module, wrapped in DistributedDataParallel under torchrun; with `compile`, compiled by
    torch.compile (on CUDA with mode "reduce-overhead": the step's kernels replayed as CUDA graphs, one graph
    per batch shape, so the short last batch gets its own)."""
    module: torch.nn.Module = LossOf(model)
    if group.enabled:
        cuda = group.device.startswith("cuda")
        module = DistributedDataParallel(module, device_ids=[group.device] if cuda else None)
    if compile:
        mode = "reduce-overhead" if str(next(model.parameters()).device).startswith("cuda") else "default"
        module = torch.compile(module, mode=mode, dynamic=False)
    return module


def train(
    model: SequentialModel,
    split: LeaveOneOutSplit,
    config: RunConfig,
    recorder: EpochRecorder | None = None,
    checkpointer: Checkpointer | None = None,
    progress: bool = True,
    candidates: torch.Tensor | None = None,
    resume: bool = False,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    group: ProcessGroup = SINGLE,
) -> TrainResult:
    """Train `model` (already on its device). `recorder` writes what each epoch leaves behind (kept in memory
    only by default), `checkpointer` the checkpoints (none by default); `candidates` are the validation's
    sampled negatives, if any; `on_epoch(epoch, valid_metrics)` is called after every validation (a tuner
    reports and prunes there). Under torchrun, `group` is this process's place in the process group (see
    bsarec/distributed.py)."""
    device = config.torch_device()
    recorder = recorder or EpochRecorder(config.monitor)
    generator = torch.Generator().manual_seed(config.seed)  # sample order, negatives, positives
    optimizer = make_optimizer(model, config)
    make_batch = BatchMaker(model, split, device, softmax_sampler(config, split))
    compute_loss = loss_module(model, group, config.compile)
    warn_if_slow_precision(config.precision, device)
    state, best = TrainState.start(config.patience), BestWeights(model)
    parts = {
        "model": model,
        "optimizer": optimizer,
        "state": state,
        "best": best,
        "rng": RandomState(generator, group),
    }
    checkpoint = Checkpoint(checkpointer, parts, group)
    saved = checkpoint.newest() if resume else None
    if saved is not None:
        checkpoint.restore(saved)
        if not group.is_main:  # the running loss is a sum over the processes, counted once by the main one
            state.loss_sum = 0.0
        log.info("resuming at epoch %d, batch %d", state.epoch, state.batch)
    elif resume:
        log.warning("no checkpoint to resume from: training from the start")
    group.barrier()  # every process has read the checkpoint before rank 0 writes the next one
    recorder.start(state)
    interrupted = False
    try:
        # a run resumed from the checkpoint of the epoch that stopped it trains no further
        while state.epoch < config.epochs and not state.stopper.should_stop:
            train_epoch(
                state,
                model,
                compute_loss,
                optimizer,
                make_batch,
                generator,
                config,
                group,
                progress,
                checkpoint,
            )
            epoch = state.epoch
            valid = finish_epoch(
                model,
                split,
                config,
                candidates,
                state,
                best,
                recorder,
                checkpoint,
                samples_per_s=state.seen / state.epoch_seconds,
                group=group,
            )
            if on_epoch is not None:
                on_epoch(epoch, valid)
            if group.broadcast_flag(state.stopper.should_stop):
                log.info("early stop: no %s improvement for %d epochs", config.monitor, config.patience)
    except KeyboardInterrupt:
        interrupted = True
        log_interruption(state)
    best.restore(model)
    if saved is not None and state.stopper.best_epoch >= 0:
        recorder.save_best(model)  # the best weights on disk, whatever happened before the run was cut off
    return TrainResult.of(state, interrupted)


def finish_epoch(
    model: SequentialModel,
    split: LeaveOneOutSplit,
    config: RunConfig,
    candidates: torch.Tensor | None,
    state: TrainState,
    best: BestWeights,
    recorder: EpochRecorder,
    checkpoint: Checkpoint,
    samples_per_s: float,
    group: ProcessGroup = SINGLE,
    label: str = "",
) -> dict[str, float]:
    """The end of an epoch whose loss and time `state` holds, the same for a single run and for each run of a
    pack: refuse a non-finite loss, validate, update early stopping, record the epoch (history, log line,
    trackers, best weights) and checkpoint at the start of the next one. Returns the validation metrics."""
    loss = state.loss_sum / max(state.seen, 1)
    if not math.isfinite(loss):
        raise NonFiniteError(
            f"{label}epoch {state.epoch}: the training loss is {loss}: the run diverged (lr {config.lr}); the "
            "best weights so far are in the run directory"
        )
    state.train_seconds += state.epoch_seconds
    started = time.perf_counter()
    valid = evaluate(model, split.valid, config.history_mask, config.eval_batch_size, candidates, group)
    valid_seconds = time.perf_counter() - started
    improved = group.broadcast_flag(state.stopper.update(valid[config.monitor], state.epoch))
    if improved:
        state.best_valid = valid
    record = epoch_record(
        state.epoch, loss, state.epoch_seconds, samples_per_s, valid_seconds, valid, improved
    )
    recorder.epoch(state, record, best, model)
    state.next_epoch()
    checkpoint.save(state.epoch, 0)
    return valid


def log_interruption(state: TrainState) -> None:
    if state.stopper.best_epoch < 0:
        log.warning(
            "interrupted during epoch %d, before any epoch was validated: the run has no trained weights "
            "(--resume continues it)",
            state.epoch,
        )
    else:
        log.warning(
            "interrupted during epoch %d; restoring the best weights (epoch %d)",
            state.epoch,
            state.stopper.best_epoch,
        )


def train_epoch(
    state: TrainState,
    model: SequentialModel,
    compute_loss: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    make_batch: BatchMaker,
    generator: torch.Generator,
    config: RunConfig,
    group: ProcessGroup,
    progress: bool,
    checkpoint: Checkpoint,
) -> None:
    """Train the rest of `state.epoch`: all of it, or what a resumed checkpoint left. Afterwards the state's
    loss_sum, seen and epoch_seconds describe the whole epoch."""
    model.train()
    started, earlier_seconds = time.perf_counter(), state.epoch_seconds
    n_samples, batch_size = len(make_batch.split.train_targets), config.batch_size
    if state.order is None:
        state.order = torch.randperm(n_samples, generator=generator)
    total_loss = torch.tensor(
        state.loss_sum, device=make_batch.device
    )  # summed on the device: no sync per step
    starts = range(state.batch * batch_size, n_samples, batch_size)
    bar = tqdm(starts, desc=f"epoch {state.epoch}", leave=False, disable=not progress, unit="batch")
    reported = started  # without a bar, a long epoch says how it goes every REPORT_SECONDS
    for start in bar:
        index = state.order[start : start + batch_size]
        rows = group.bounds(len(index))  # the whole batch in a single process
        with training_autocast(config.precision, make_batch.device):
            loss = compute_loss(make_batch(index, generator, rows))
        share = (rows[1] - rows[0]) / len(index)
        optimizer.zero_grad(set_to_none=True)
        # DDP averages the processes' gradients; weighting each share's mean loss by its size x processes
        # makes that average the gradient of the whole batch's mean loss
        (loss * share * group.world).backward()
        optimizer.step()
        total_loss += loss.detach() * len(index) * share
        state.seen += len(index)
        if progress and state.batch % 20 == 0:
            bar.set_postfix(
                loss=f"{total_loss.item() / state.seen:.4f}",
                samples_per_s=f"{state.seen / (time.perf_counter() - started):.0f}",
            )
        elif not progress and group.is_main and time.perf_counter() - reported >= REPORT_SECONDS:
            reported = time.perf_counter()
            log.info(
                "epoch %d: %d of %d batches, loss %.4f (%.0f samples/s)",
                state.epoch,
                state.batch + 1,
                -(-n_samples // batch_size),
                total_loss.item() / state.seen,
                state.seen / (reported - started + earlier_seconds),
            )
        state.batch += 1
        if (
            config.checkpoint_steps
            and state.batch % config.checkpoint_steps == 0
            and start + batch_size < n_samples
        ):
            state.loss_sum = group.sum(total_loss).item()
            state.epoch_seconds = earlier_seconds + time.perf_counter() - started
            checkpoint.save(state.epoch, state.batch)
    state.loss_sum = group.sum(total_loss).item()
    state.epoch_seconds = earlier_seconds + time.perf_counter() - started
