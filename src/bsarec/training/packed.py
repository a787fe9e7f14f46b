"""Packed runs: several runs of one model on one dataset, trained together as one batched model.

The runs may differ in their seed and in settings that keep every shape: lr, weight_decay, patience, epochs,
hidden_dropout, attn_dropout and, for BSARec, alpha and c (PACKABLE). Their weights are stacked
(torch.func.stack_module_state) and one step computes every run's loss and gradients at once (vmap over the runs
of grad of the loss), so a GPU runs one kernel where it ran N. Each run keeps what makes it a run of its own:
- its initial weights (drawn as its unpacked run draws them), its sample order and its sampled negatives or
  positives (from its own generator, seeded with its seed, in the unpacked run's order);
- its dropout masks (vmap's randomness="different": independent across runs; not the masks its unpacked run
  would draw, so a packed run equals its unpacked run exactly only without dropout, which the tests check) and,
  when the runs' dropout differs, its own dropout p (each model's p then becomes a buffer, which is stacked);
- its Adam state, learning rate and weight decay (PackedAdam: Adam's arithmetic per run);
- its validation after every epoch, early stopping and best weights; a run that stops is frozen (its weights
  and optimizer state no longer change) while the others go on.
The loop is `train`'s (trainer.py), for N runs; evaluation unstacks each run into its own model and uses the
ordinary code. After every epoch each run that trained in it gets an ordinary checkpoint in its own run
directory (its weights, its Adam state in torch.optim.Adam's layout, its TrainState and generators), so a pack
that is cut off continues from there as a pack (`resume_from`), and each of its runs could also continue alone.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from bsarec.config import RunConfig
from bsarec.data.split import LeaveOneOutSplit
from bsarec.distributed import SINGLE
from bsarec.errors import ConfigError, NonFiniteError
from bsarec.evaluation.metrics import evaluate
from bsarec.models import SequentialModel
from bsarec.models.layers import per_run_dropout
from bsarec.training.checkpoint import (
    Checkpointer,
    flat_optimizer_state,
    optimizer_state_of,
    optimizer_tensors,
    prefixed,
    restore_rng,
    rng_tensors,
    unprefixed,
)
from bsarec.training.early_stopping import EarlyStopping
from bsarec.training.numerics import training_autocast, warn_if_slow_precision
from bsarec.training.sampling import BatchMaker, softmax_sampler
from bsarec.training.state import TrainState, copy_weights
from bsarec.training.trainer import LossOf, TrainResult, epoch_record, log_epoch, make_optimizer

log = logging.getLogger("bsarec")
# the pack's run a log line is about (None: the whole pack); each run's train.log keeps its own lines and the
# pack's (RunLogFilter)
CURRENT_RUN: contextvars.ContextVar[int | None] = contextvars.ContextVar("packed_run", default=None)


class RunLogFilter(logging.Filter):
    """Passes the lines about run `run` of a pack and the lines about the whole pack."""

    def __init__(self, run: int) -> None:
        super().__init__()
        self.run = run

    def filter(self, record: logging.LogRecord) -> bool:
        return CURRENT_RUN.get() in (None, self.run)


@contextmanager
def about_run(run: int) -> Iterator[None]:
    """The log lines inside the block are about run `run` of the pack (RunLogFilter)."""
    token = CURRENT_RUN.set(run)
    try:
        yield
    finally:
        CURRENT_RUN.reset(token)


PACKABLE = (
    "seed",
    "lr",
    "weight_decay",
    "patience",
    "epochs",
    "hidden_dropout",
    "attn_dropout",
    "alpha",
    "c",
)
DROPOUTS = ("hidden_dropout", "attn_dropout")
UNPACKABLE_MODELS = {"gru4rec": "torch.func has no batching rule for its GRU"}


def check_packable(configs: list[RunConfig]) -> None:
    """Refuse runs that cannot share one batched model: another model, dataset or shape, or a setting outside
    PACKABLE that differs (it would have to be one value for all of them)."""
    if not configs:
        raise ConfigError("pack: no runs")
    first = configs[0].to_dict()
    if first["model"] in UNPACKABLE_MODELS:
        raise ConfigError(f"pack: {first['model']} cannot be packed ({UNPACKABLE_MODELS[first['model']]})")
    if first["model"] != "bsarec" and any(c.to_dict()["alpha"] != first["alpha"] for c in configs):
        raise ConfigError("pack: alpha may differ within a pack for BSARec only")
    if first["item_features"] or first["cold_items"]:
        raise ConfigError("pack: runs with item features or cold items are trained one by one")
    ignored = {*PACKABLE, "threads", "checkpoint_steps", "keep_checkpoints"}
    for config in configs[1:]:
        other = config.to_dict()
        differing = sorted(k for k in first if k not in ignored and first[k] != other[k])
        if differing:
            raise ConfigError(
                f"pack: the runs differ in {', '.join(differing)}; a pack may differ only in {', '.join(PACKABLE)}"
            )


class PackedAdam:
    """Adam (as torch.optim.Adam: L2 weight decay added to the gradient, bias-corrected moments) on stacked
    weights, with each run's own lr, weight decay and step count; runs outside `active` are left untouched."""

    def __init__(
        self, params: dict[str, torch.Tensor], lrs: list[float], decays: list[float], eps: float = 1e-8
    ):
        self.params, self.eps, self.betas = params, eps, (0.9, 0.999)
        device = next(iter(params.values())).device
        # learning rates and bias corrections in double, as torch's Adam computes them from Python floats
        self.lr = torch.tensor(lrs, dtype=torch.float64, device=device)
        self.decay = torch.tensor(decays, dtype=torch.float32, device=device)
        self.steps = torch.zeros(len(lrs), dtype=torch.float64, device=device)
        self.moments = {k: (torch.zeros_like(p), torch.zeros_like(p)) for k, p in params.items()}

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor], active: torch.Tensor) -> None:
        beta1, beta2 = self.betas
        self.steps += active.double()
        steps = self.steps.clamp(min=1)
        bias1, bias2 = 1 - beta1**steps, 1 - beta2**steps
        step_size, bias2_root = (self.lr / bias1).float(), bias2.sqrt().float()
        for name, param in self.params.items():
            shape = (-1,) + (1,) * (param.dim() - 1)
            on = active.view(shape)
            g = grads[name] + self.decay.view(shape) * param
            m, v = self.moments[name]
            m.copy_(torch.where(on, beta1 * m + (1 - beta1) * g, m))
            v.copy_(torch.where(on, beta2 * v + (1 - beta2) * g * g, v))
            denom = v.sqrt() / bias2_root.view(shape) + self.eps
            update = step_size.view(shape) * m / denom
            param.sub_(torch.where(on, update, torch.zeros_like(update)))

    def run_state(self, run: int) -> dict[str, dict[str, torch.Tensor]]:
        """Run `run`'s Adam state per parameter name, as torch.optim.Adam keeps it (step, exp_avg,
        exp_avg_sq)."""
        step = self.steps[run].float().cpu()
        return {
            name: {"step": step.clone(), "exp_avg": m[run], "exp_avg_sq": v[run]}
            for name, (m, v) in self.moments.items()
        }

    @torch.no_grad()
    def load_run_state(self, run: int, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, (m, v) in self.moments.items():
            m[run].copy_(state[name]["exp_avg"])
            v[run].copy_(state[name]["exp_avg_sq"])
        self.steps[run] = float(next(iter(state.values()))["step"])


class PackedStep:
    """One training step of N runs at once: their stacked weights, vmap over the runs of grad of the loss,
    and PackedAdam. `step(batch, active)` takes the runs' batches stacked on a first axis and returns each
    run's loss; the weights of inactive runs do not change."""

    def __init__(self, models: list[SequentialModel], configs: list[RunConfig]):
        self.models = models
        self.own_dropout = any(getattr(c, d) != getattr(configs[0], d) for c in configs for d in DROPOUTS)
        if self.own_dropout:  # each run's p as a buffer (stacked below); else the faster shared-p masks
            for model in models:
                per_run_dropout(model)
        wrapped = [LossOf(m) for m in models]
        self.params, self.buffers = stack_module_state(wrapped)
        template = copy.deepcopy(wrapped[0])
        self.precision, self.device = configs[0].precision, configs[0].torch_device()
        warn_if_slow_precision(self.precision, self.device)
        self.optimizer = PackedAdam(self.params, [c.lr for c in configs], [c.weight_decay for c in configs])

        def loss_of(params, buffers, batch):
            return functional_call(template, (params, buffers), (batch,))

        self._grad_and_loss = vmap(grad_and_value(loss_of), randomness="different")

    def __call__(self, batch: dict[str, torch.Tensor], active: torch.Tensor) -> torch.Tensor:
        with training_autocast(self.precision, self.device):
            grads, losses = self._grad_and_loss(self.params, self.buffers, batch)
        self.optimizer.step(grads, active)
        return losses.detach()

    def release(self) -> None:
        """Give the models back their numeric dropout p (after training)."""
        if self.own_dropout:
            for model in self.models:
                per_run_dropout(model, enabled=False)

    def weights_of(self, run: int) -> dict[str, torch.Tensor]:
        """Run `run`'s weights, named as in its model's state_dict."""
        return {k[len("model.") :]: v[run] for k, v in self.params.items()}


Saved = tuple[dict[str, torch.Tensor], dict[str, Any]]  # a checkpoint: (tensors, JSON values)


def stopped(stopper: EarlyStopping, epoch: int, config: RunConfig) -> bool:
    """Whether a run is done: early stopping says so, or `epoch` (the next to train) is past its last."""
    return stopper.should_stop or epoch >= config.epochs


def resumable(saved: list[Saved | None], configs: list[RunConfig]) -> bool:
    """Whether the runs' newest checkpoints make one pack again: every run has one, and the runs still
    training are all at the same epoch (a run that stopped is frozen at its own)."""
    if any(s is None for s in saved):
        return False
    epochs = set()
    for (_, values), config in zip(saved, configs, strict=True):
        stopper = EarlyStopping(config.patience)
        stopper.load_state_dict(values["stopper"])
        if not stopped(stopper, values["epoch"], config):
            epochs.add(values["epoch"])
    return len(epochs) <= 1


class PackCheckpoints:
    """Each run's ordinary checkpoint (training/checkpoint.py), written and read for a pack: the run's weights,
    its Adam state as torch.optim.Adam keeps it, its TrainState, its own generator and the global one."""

    def __init__(self, checkpointers: list[Checkpointer | None], models: list[SequentialModel], configs):
        self.checkpointers, self.models = checkpointers, models
        self.names = [[f"model.{name}" for name, _ in m.named_parameters()] for m in models]
        # the optimizer's JSON part (param groups) as the unpacked run's Adam writes it
        self.groups = [
            optimizer_tensors(make_optimizer(m, c))[1] if checkpointer is not None else []
            for m, c, checkpointer in zip(models, configs, checkpointers, strict=True)
        ]

    def save(self, run: int, step: PackedStep, state: TrainState, generator: torch.Generator) -> None:
        checkpointer = self.checkpointers[run]
        if checkpointer is None:
            return
        adam = step.optimizer.run_state(run)  # by parameter name; a checkpoint keys it by parameter index
        optim = flat_optimizer_state({index: adam[name] for index, name in enumerate(self.names[run])})
        state_tensors, values = state.state_dict()
        tensors = prefixed("model.", self.models[run].state_dict()) | state_tensors | optim
        tensors |= rng_tensors(generator, SINGLE)
        checkpointer.save(state.epoch, 0, tensors, values | {"optimizer_groups": self.groups[run]})

    def restore(self, run: int, saved: Saved, state: TrainState, device) -> None:
        """Load run `run`'s checkpoint into its model and state (Adam and generators: `restore_rest`)."""
        tensors, values = saved
        self.models[run].load_state_dict(unprefixed("model.", tensors))
        state.load_state_dict(tensors, values, device, SINGLE)

    def restore_rest(self, run: int, saved: Saved, step: PackedStep, generator: torch.Generator) -> None:
        tensors = saved[0]
        restore_rng(tensors, generator, SINGLE)  # its own generator, and the pack's global one as it saved it
        adam = optimizer_state_of(tensors)
        step.optimizer.load_run_state(run, {name: adam[index] for index, name in enumerate(self.names[run])})


def train_packed(
    models: list[SequentialModel],
    split: LeaveOneOutSplit,
    configs: list[RunConfig],
    candidates: list[torch.Tensor | None] | None = None,
    on_epoch: Callable[[int, dict], bool | None] | None = None,
    progress: bool = False,
    checkpointers: list[Checkpointer | None] | None = None,
    resume_from: list[Saved] | None = None,
) -> list[TrainResult]:
    """Train `models` (one per config, already built as their unpacked runs build them, on one device)
    together. `on_epoch(run, record)` is called after each run's validation with the epoch's record (loss,
    validation metrics, "best": whether it improved), where a run directory writes its history and weights;
    when it returns True the run stops there (a tuner prunes it). With `checkpointers` (one per run, or None),
    each run that trained in an epoch is checkpointed after it; `resume_from`, the runs' newest checkpoints
    (`resumable`), continues the pack from them. Returns each run's TrainResult; every model holds its best
    weights afterwards."""
    check_packable(configs)
    n, base = len(models), configs[0]
    device = base.torch_device()
    generators = [torch.Generator().manual_seed(c.seed) for c in configs]
    states = [TrainState.start(m, c.patience) for m, c in zip(models, configs, strict=True)]
    checkpoints = PackCheckpoints(checkpointers or [None] * n, models, configs)
    if resume_from is not None:  # the weights first: PackedStep stacks them
        for run, saved in enumerate(resume_from):
            checkpoints.restore(run, saved, states[run], device)
    step = PackedStep(models, configs)
    makers = [
        BatchMaker(m, split, device, softmax_sampler(c, split)) for m, c in zip(models, configs, strict=True)
    ]
    if (
        resume_from is not None
    ):  # Adam and the generators last, as they were when the checkpoints were written
        # the global generator from the newest checkpoint: a run that stopped earlier saved an older one
        for run in sorted(range(n), key=lambda r: states[r].epoch):
            checkpoints.restore_rest(run, resume_from[run], step, generators[run])
        log.info("resuming the pack at epoch %d", max(s.epoch for s in states))
    active = torch.tensor(
        [not stopped(s.stopper, s.epoch, c) for s, c in zip(states, configs, strict=True)], device=device
    )
    candidates = candidates or [None] * n

    n_samples, batch_size = len(split.train_targets), base.batch_size
    first = max(s.epoch for s in states)
    for epoch in range(first, max(c.epochs for c in configs)):
        if not bool(active.any()):
            break
        started = time.perf_counter()
        orders = [torch.randperm(n_samples, generator=g) for g in generators]
        totals = torch.zeros(n, device=device)
        for start in range(0, n_samples, batch_size):
            batches = [
                make(order[start : start + batch_size], g)
                for make, order, g in zip(makers, orders, generators, strict=True)
            ]
            stacked = {k: torch.stack([b[k] for b in batches]) for k in batches[0]}
            totals += step(stacked, active) * len(stacked["targets"][0])
        seconds = time.perf_counter() - started
        running = int(active.sum())  # the runs that trained this epoch, before any of them stops
        for run in range(n):
            state, config = states[run], configs[run]
            if not bool(active[run]):
                continue
            with about_run(run):
                loss = float(totals[run]) / n_samples
                if not math.isfinite(loss):
                    raise NonFiniteError(
                        f"packed run {run} (seed {config.seed}), epoch {epoch}: the training loss is {loss}"
                    )
                models[run].load_state_dict(step.weights_of(run), strict=False)
                eval_started = time.perf_counter()
                valid = evaluate(
                    models[run], split.valid, config.history_mask, config.eval_batch_size, candidates[run]
                )
                improved = state.stopper.update(valid[config.monitor], epoch)
                # the pack's time is shared by its running runs; samples per second are the whole pack's
                record = epoch_record(
                    epoch,
                    loss,
                    seconds / running,
                    n_samples * running / seconds,
                    time.perf_counter() - eval_started,
                    valid,
                    improved,
                )
                state.history.append(record)
                state.train_seconds += record["train_seconds"]
                log_epoch(record, valid, config.monitor, f"run {run} (seed {config.seed}): ")
                if improved:
                    state.best_valid, state.best_weights = valid, copy_weights(models[run])
                state.epoch = epoch + 1  # as TrainState.next_epoch: the epoch a checkpoint continues with
                checkpoints.save(run, step, state, generators[run])
                told_to_stop = bool(on_epoch(run, record)) if on_epoch is not None else False
                if told_to_stop or stopped(state.stopper, state.epoch, config):
                    active[run] = False
                    log.info("packed run %d (seed %d) stops after epoch %d", run, config.seed, epoch)
    step.release()
    results = []
    for model, state in zip(models, states, strict=True):
        model.load_state_dict(state.best_weights)
        results.append(
            TrainResult(
                best_epoch=state.stopper.best_epoch,
                epochs=len(state.history),
                best_valid=state.best_valid,
                train_seconds=state.train_seconds,
                history=state.history,
            )
        )
    return results
