"""Early stopping on a validation metric, as the reference code does it."""

from __future__ import annotations

from typing import Any


class EarlyStopping:
    """Keeps the best score (strictly better only, as the reference) and counts epochs without improvement."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_score = float("-inf")
        self.best_epoch = -1
        self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best_epoch, self.bad_epochs = (
            state["best_score"],
            state["best_epoch"],
            state["bad_epochs"],
        )

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
