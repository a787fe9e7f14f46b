"""Small helpers for the training loop: early stopping, the history file, weights I/O, negatives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from bsarec.io import atomic_write_bytes


class EarlyStopping:
    """Keeps the best score (strictly better only, as the reference) and counts epochs without improvement."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_score = float("-inf")
        self.best_epoch = -1
        self.bad_epochs = 0

    def update(self, score: float, epoch: int) -> bool:
        """Record an epoch's score; True when it is a new best."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


class HistoryLog:
    """One JSON line per epoch, flushed as it is written so that an interrupted run keeps its history."""

    def __init__(self, path: Path | None):
        self.path = path
        self.records: list[dict[str, Any]] = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path is not None:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Weights as safetensors, written atomically (no pickles anywhere)."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save_safetensors(state))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    model.load_state_dict(load_safetensors(Path(path).read_bytes()))  # copied onto the model's device


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
