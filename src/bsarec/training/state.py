"""What training has done so far besides the model's and the optimizer's own state: TrainState (the position
and the running numbers) and BestWeights (the best epoch's weights). Both are stateful parts of a checkpoint
(training/checkpoint.py): `state_dict()` returns one dict, `load_state_dict(d)` takes it back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from bsarec.training.early_stopping import EarlyStopping


@dataclass
class TrainState:
    """The position of training (the epoch in progress, the batches of it done, its sample order), the
    epoch's running loss and time, the best validation metrics so far, early stopping, and the history of
    finished epochs. Between epochs `batch` is 0 and `order` None."""

    stopper: EarlyStopping
    epoch: int = 0
    batch: int = 0
    order: torch.Tensor | None = None
    loss_sum: float = 0.0  # the epoch's summed training loss so far, over every process
    seen: int = 0  # the epoch's samples so far
    epoch_seconds: float = 0.0  # the epoch's training seconds so far
    train_seconds: float = 0.0  # training seconds of the finished epochs
    best_valid: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, patience: int) -> TrainState:
        return cls(EarlyStopping(patience))

    def next_epoch(self) -> None:
        self.epoch, self.batch, self.order = self.epoch + 1, 0, None
        self.loss_sum, self.seen, self.epoch_seconds = 0.0, 0, 0.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "order": self.order,
            "loss_sum": self.loss_sum,
            "seen": self.seen,
            "epoch_seconds": self.epoch_seconds,
            "train_seconds": self.train_seconds,
            "stopper": self.stopper.state_dict(),
            "best_valid": self.best_valid,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.batch = state["epoch"], state["batch"]
        within = self.batch > 0  # the running numbers of an epoch cut off midway
        self.order = state["order"] if within else None
        self.loss_sum = state["loss_sum"] if within else 0.0
        self.seen = state["seen"] if within else 0
        self.epoch_seconds = state["epoch_seconds"] if within else 0.0
        self.train_seconds = state["train_seconds"]
        self.stopper.load_state_dict(state["stopper"])
        self.best_valid, self.history = state["best_valid"], state["history"]


class BestWeights:
    """A copy of the model's weights at its best epoch so far (its initial weights before any): restored at
    the end of training, and kept in checkpoints so that a resumed run ends with them."""

    def __init__(self, model: torch.nn.Module):
        self.weights = copy_weights(model)

    def take(self, model: torch.nn.Module) -> None:
        self.weights = copy_weights(model)

    def restore(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.weights)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.weights

    def load_state_dict(self, weights: dict[str, torch.Tensor]) -> None:
        devices = {name: value.device for name, value in self.weights.items()}
        if set(weights) != set(devices):
            raise KeyError(f"best weights: expected {len(devices)} tensors of the model, got {len(weights)}")
        self.weights = {name: value.to(devices[name]) for name, value in weights.items()}


def copy_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
