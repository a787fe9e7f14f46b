"""What a training batch holds besides inputs and targets: sampled negatives, user rows, same-target
positives, and the shared items of sampled softmax, all drawn from the loop's seeded generator."""

from __future__ import annotations

import math

import torch

from bsarec.config import RunConfig
from bsarec.data.same_target import SameTargetSampler
from bsarec.data.split import LeaveOneOutSplit
from bsarec.models import SequentialModel


class BatchMaker:
    """What a model's loss takes for a batch of sample indices: inputs and targets, plus the sampled negatives,
    user rows or same-target positives that the model declares it needs (models/base.py), and the shared items
    of sampled softmax; all on the model's device. Everything is drawn for the whole batch, so that a process
    of a multi-process run, which keeps only `rows` of it, gets exactly its share of the single-process batch."""

    def __init__(
        self,
        model: SequentialModel,
        split: LeaveOneOutSplit,
        device: str,
        sampler: SoftmaxSampler | None = None,
        resident: bool | None = None,
    ):
        self.split, self.device, self.sampler = split, device, sampler
        # on a GPU (or with resident=True) the training samples live on the device: a batch is gathered there,
        # and only the (B,) index and what is drawn on the host cross per step
        self.resident = None
        if resident if resident is not None else not str(device).startswith("cpu"):
            self.resident = {
                "inputs": split.train_inputs.to(device),
                "targets": split.train_targets.to(device),
                "users": split.train_users.to(device),
            }
        self.negatives = model.needs_negatives
        self.users = model.needs_users
        self.positives = (
            SameTargetSampler(split.train_inputs, split.train_targets) if model.needs_positives else None
        )

    def __call__(
        self, index: torch.Tensor, generator: torch.Generator, rows: tuple[int, int] | None = None
    ) -> dict[str, torch.Tensor]:
        split = self.split
        drawn: dict[str, torch.Tensor] = {}  # drawn on the host, with the loop's generator
        if self.negatives:
            inputs, targets = split.train_inputs[index], split.train_targets[index]
            drawn["negatives"] = sample_negatives(inputs, targets, split.n_items, generator)
        positives = self.positives.sample(index, generator) if self.positives is not None else None
        if self.resident is None:
            batch = {"inputs": split.train_inputs[index], "targets": split.train_targets[index], **drawn}
            if self.users:
                batch["users"] = split.train_users[index]
            if positives is not None:
                batch["positives"] = split.train_inputs[positives]
        else:
            on_device = index.to(self.device, non_blocking=True)
            batch = {k: self.resident[k][on_device] for k in ("inputs", "targets")} | drawn
            if self.users:
                batch["users"] = self.resident["users"][on_device]
            if positives is not None:
                batch["positives"] = self.resident["inputs"][positives.to(self.device, non_blocking=True)]
        if rows is not None:
            batch = {k: v[rows[0] : rows[1]] for k, v in batch.items()}
        if self.sampler is not None:  # shared by every sample of the batch
            batch["sampled_items"], batch["sampled_log_expected"] = self.sampler(generator)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}


def softmax_sampler(config: RunConfig, split: LeaveOneOutSplit) -> SoftmaxSampler | None:
    """The run's sampled-softmax proposal, or None for the full softmax."""
    if not config.softmax_negatives:
        return None
    return SoftmaxSampler(
        split.n_items, config.softmax_negatives, config.softmax_sampler, split.train_targets
    )


def sample_negatives(
    inputs: torch.Tensor, targets: torch.Tensor, n_items: int, generator: torch.Generator
) -> torch.Tensor:
    """One negative per sample, uniform over 1..n_items-1, never one of the sample's own items."""
    negatives = torch.randint(1, n_items, targets.shape, generator=generator)
    while True:
        clash = (negatives[:, None] == inputs).any(1) | (negatives == targets)
        if not clash.any():
            return negatives
        negatives[clash] = torch.randint(1, n_items, (int(clash.sum()),), generator=generator)


class SoftmaxSampler:
    """The shared items of sampled softmax: `count` rows drawn with replacement from a proposal q over all
    `n_rows` rows, and log(count · q) of each draw (the logQ correction). The proposal is uniform, or the
    training-target frequency plus one, so that every row (and so every term of the full softmax) can be
    drawn, which keeps the corrected estimate unbiased."""

    def __init__(self, n_rows: int, count: int, kind: str, targets: torch.Tensor | None = None):
        if kind not in ("uniform", "popularity"):
            raise ValueError(f"sampler must be 'uniform' or 'popularity', got {kind!r}")
        if kind == "popularity" and targets is None:
            raise ValueError("the popularity sampler needs the training targets")
        self.n_rows, self.count = n_rows, count
        self.probs = None
        if kind == "popularity":
            frequency = torch.bincount(targets, minlength=n_rows)[:n_rows].to(torch.float64) + 1.0
            self.probs = frequency / frequency.sum()

    def __call__(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.probs is None:
            items = torch.randint(self.n_rows, (self.count,), generator=generator)
            log_expected = torch.full((self.count,), math.log(self.count / self.n_rows))
        else:
            items = torch.multinomial(self.probs, self.count, replacement=True, generator=generator)
            log_expected = (self.count * self.probs[items]).log()
        return items, log_expected.float()
