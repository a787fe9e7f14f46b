"""TrainState: what training has done so far, besides the model's and the optimizer's own state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from bsarec.distributed import ProcessGroup
from bsarec.training.checkpoint import prefixed, unprefixed
from bsarec.training.early_stopping import EarlyStopping


@dataclass
class TrainState:
    """The position of training (the epoch in progress, the batches of it done, its sample order), the
    epoch's running loss and time, the best weights and validation metrics so far, early stopping, and the
    history of finished epochs. Between epochs `batch` is 0 and `order` None."""

    stopper: EarlyStopping
    best_weights: dict[str, torch.Tensor]
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
    def start(cls, model: torch.nn.Module, patience: int) -> TrainState:
        return cls(EarlyStopping(patience), copy_weights(model))

    def next_epoch(self) -> None:
        self.epoch, self.batch, self.order = self.epoch + 1, 0, None
        self.loss_sum, self.seen, self.epoch_seconds = 0.0, 0, 0.0

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON-able values), as a checkpoint stores them."""
        tensors = prefixed("best.", self.best_weights)
        if self.order is not None:
            tensors["order"] = self.order
        values = {
            "epoch": self.epoch,
            "batch": self.batch,
            "loss_sum": self.loss_sum,
            "seen": self.seen,
            "epoch_seconds": self.epoch_seconds,
            "train_seconds": self.train_seconds,
            "stopper": self.stopper.state_dict(),
            "best_valid": self.best_valid,
            "history": self.history,
        }
        return tensors, values

    def load_state_dict(
        self, tensors: dict[str, torch.Tensor], values: dict[str, Any], device: str, group: ProcessGroup
    ) -> None:
        self.best_weights = {k: v.to(device) for k, v in unprefixed("best.", tensors).items()}
        self.epoch, self.batch = values["epoch"], values["batch"]
        self.order = tensors["order"] if self.batch > 0 else None
        # the running loss is a sum over the processes: counted once, by the main process
        self.loss_sum = values["loss_sum"] if group.is_main and self.batch > 0 else 0.0
        self.seen = values["seen"] if self.batch > 0 else 0
        self.epoch_seconds = values["epoch_seconds"] if self.batch > 0 else 0.0
        self.train_seconds = values["train_seconds"]
        self.stopper.load_state_dict(values["stopper"])
        self.best_valid, self.history = values["best_valid"], values["history"]


def copy_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
