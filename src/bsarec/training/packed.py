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
The batches are the pack's own; the end of each epoch is the single run's (trainer.finish_epoch), for each run
that trained in it: its model is unstacked, validated, recorded and checkpointed with the same parts as an
unpacked run's (its Adam state in torch.optim.Adam's layout: RunAdam), so a pack that is cut off continues
from there as a pack (`resume_from`), and each of its runs could also continue alone.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from bsarec.config import RunConfig
from bsarec.data.split import LeaveOneOutSplit
from bsarec.distributed import SINGLE
from bsarec.errors import ConfigError
from bsarec.models import SequentialModel
from bsarec.models.layers import per_run_dropout
from bsarec.training.checkpoint import Checkpoint, Checkpointer, RandomState, Saved
from bsarec.training.early_stopping import EarlyStopping
from bsarec.training.numerics import training_autocast, warn_if_slow_precision
from bsarec.training.recorder import EpochRecorder
from bsarec.training.sampling import BatchMaker, softmax_sampler
from bsarec.training.state import BestWeights, TrainState
from bsarec.training.trainer import LossOf, TrainResult, finish_epoch, make_optimizer

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


class RunAdam:
    """Run `run`'s share of a PackedAdam as a checkpoint part, in torch.optim.Adam's state_dict layout (state
    keyed by parameter index, and the param groups its unpacked run's Adam has), so that each run of a pack
    can also continue alone."""

    def __init__(self, step: PackedStep, run: int, model: SequentialModel, config: RunConfig):
        self.step, self.run = step, run
        self.names = [f"model.{name}" for name, _ in model.named_parameters()]
        self.groups = make_optimizer(model, config).state_dict()["param_groups"]

    def state_dict(self) -> dict[str, Any]:
        adam = self.step.optimizer.run_state(self.run)
        return {"state": {i: adam[name] for i, name in enumerate(self.names)}, "param_groups": self.groups}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        by_name = {name: state["state"][i] for i, name in enumerate(self.names)}
        self.step.optimizer.load_run_state(self.run, by_name)


def stopped(stopper: EarlyStopping, epoch: int, config: RunConfig) -> bool:
    """Whether a run is done: early stopping says so, or `epoch` (the next to train) is past its last."""
    return stopper.should_stop or epoch >= config.epochs


def resumable(saved: list[Saved | None], configs: list[RunConfig]) -> bool:
    """Whether the runs' newest checkpoints make one pack again: every run has one, and the runs still
    training are all at the same epoch (a run that stopped is frozen at its own)."""
    if any(s is None for s in saved):
        return False
    epochs = set()
    for (_, _, values), config in zip(saved, configs, strict=True):
        stopper = EarlyStopping(config.patience)
        try:
            stopper.load_state_dict(values["state"]["stopper"])
        except (KeyError, TypeError):  # not a checkpoint this version wrote: start the pack anew
            return False
        if not stopped(stopper, values["epoch"], config):
            epochs.add(values["epoch"])
    return len(epochs) <= 1


def train_packed(
    models: list[SequentialModel],
    split: LeaveOneOutSplit,
    configs: list[RunConfig],
    candidates: list[torch.Tensor | None] | None = None,
    recorders: list[EpochRecorder] | None = None,
    checkpointers: list[Checkpointer | None] | None = None,
    resume_from: list[Saved] | None = None,
    on_epoch: Callable[[int, dict], bool | None] | None = None,
) -> list[TrainResult]:
    """Train `models` (one per config, already built as their unpacked runs build them, on one device)
    together. Each run has its `recorder` (what an epoch leaves behind: history, log line, trackers, best
    weights) and its `checkpointer` (or None): each run that trained in an epoch is recorded and checkpointed
    after it, as a single run is (trainer.finish_epoch). `resume_from`, the runs' newest checkpoints
    (`resumable`), continues the pack from them. `on_epoch(run, record)` is called after each run's
    validation; when it returns True the run stops there (a tuner prunes it). Returns each run's
    TrainResult; every model holds its best weights afterwards."""
    check_packable(configs)
    n, base = len(models), configs[0]
    device = base.torch_device()
    recorders = recorders or [EpochRecorder(c.monitor) for c in configs]
    generators = [torch.Generator().manual_seed(c.seed) for c in configs]
    states = [TrainState.start(c.patience) for c in configs]
    bests = [BestWeights(m) for m in models]

    def parts(run: int) -> dict[str, Any]:
        return {"model": models[run], "state": states[run], "best": bests[run]}

    checkpoints = [
        Checkpoint(checkpointer, parts(run), SINGLE)
        for run, checkpointer in enumerate(checkpointers or [None] * n)
    ]
    if resume_from is not None:  # the weights first: PackedStep stacks them
        for run, saved in enumerate(resume_from):
            checkpoints[run].restore(saved)
    step = PackedStep(models, configs)
    for run, checkpoint in enumerate(checkpoints):  # Adam and the generators join once the step exists
        checkpoint.parts |= {
            "optimizer": RunAdam(step, run, models[run], configs[run]),
            "rng": RandomState(generators[run], SINGLE),
        }
    if resume_from is not None:
        # each run's own generator, and the global one (dropout) from the newest checkpoint, restored last: a
        # run that stopped earlier saved an older one
        for run in sorted(range(n), key=lambda r: states[r].epoch):
            checkpoints[run].restore(resume_from[run], ("optimizer", "rng"))
        log.info("resuming the pack at epoch %d", max(s.epoch for s in states))
    for recorder, state in zip(recorders, states, strict=True):
        recorder.start(state)
    makers = [
        BatchMaker(m, split, device, softmax_sampler(c, split)) for m, c in zip(models, configs, strict=True)
    ]
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
                models[run].load_state_dict(step.weights_of(run), strict=False)
                # the pack's time is shared by its running runs; samples per second are the whole pack's
                state.loss_sum, state.seen, state.epoch_seconds = (
                    float(totals[run]),
                    n_samples,
                    seconds / running,
                )
                finish_epoch(
                    models[run],
                    split,
                    config,
                    candidates[run],
                    state,
                    bests[run],
                    recorders[run],
                    checkpoints[run],
                    samples_per_s=n_samples * running / seconds,
                    label=f"packed run {run} (seed {config.seed}), ",
                )
                told_to_stop = bool(on_epoch(run, state.history[-1])) if on_epoch is not None else False
                if told_to_stop or stopped(state.stopper, state.epoch, config):
                    active[run] = False
                    log.info("packed run %d (seed %d) stops after epoch %d", run, config.seed, epoch)
    step.release()
    for model, best, state, recorder in zip(models, bests, states, recorders, strict=True):
        best.restore(model)
        if resume_from is not None and state.stopper.best_epoch >= 0:
            recorder.save_best(model)  # as a single run does: the best weights on disk, whatever came before
    return [TrainResult.of(state) for state in states]
