"""What each finished epoch leaves behind, written in one place: its record in the run's history (memory and
history.jsonl), its log line, the experiment trackers' values, and the best weights (memory and the run's
weights file)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bsarec.io import atomic_write_text, save_weights
from bsarec.training.state import BestWeights, TrainState

log = logging.getLogger("bsarec")


def epoch_record(
    epoch: int,
    loss: float,
    train_seconds: float,
    samples_per_s: float,
    valid_seconds: float,
    valid: dict[str, float],
    best: bool,
) -> dict[str, Any]:
    """An epoch's line of history.jsonl (the same keys for single and packed runs)."""
    return {
        "epoch": epoch,
        "loss": loss,
        "train_seconds": train_seconds,
        "samples_per_s": samples_per_s,
        "valid_seconds": valid_seconds,
        **{f"valid_{k}": v for k, v in valid.items()},
        "best": best,
    }


class EpochRecorder:
    """The side effects of a finished epoch. `history_file` and `weights_file` are the run directory's (None:
    kept in memory only, or written by another process under torchrun); `on_record` gets every record
    (experiment trackers); `who` names the run in its log lines where several train together (a pack)."""

    def __init__(
        self,
        monitor: str,
        history_file: Path | None = None,
        weights_file: Path | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        who: str = "",
    ):
        self.monitor, self.history_file, self.weights_file = monitor, history_file, weights_file
        self.on_record, self.who = on_record, who

    def start(self, state: TrainState) -> None:
        """history.jsonl from the state's records: empty for a new run, the checkpoint's for a resumed one."""
        if self.history_file is not None:
            self.history_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.history_file, "".join(json.dumps(r) + "\n" for r in state.history))

    def epoch(
        self, state: TrainState, record: dict[str, Any], best: BestWeights, model: torch.nn.Module
    ) -> None:
        """Record a validated epoch; when it is the best so far (record["best"]), keep the model's weights."""
        state.history.append(record)
        if self.history_file is not None:  # appended and flushed: an interrupted run keeps its history
            with self.history_file.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        log.info(
            "%sepoch %d loss %.4f valid %s %.4f HR@10 %.4f (%.1fs, %.0f samples/s)%s",
            self.who,
            record["epoch"],
            record["loss"],
            self.monitor,
            record[f"valid_{self.monitor}"],
            record["valid_HR@10"],
            record["train_seconds"],
            record["samples_per_s"],
            " *" if record["best"] else "",
        )
        if self.on_record is not None:
            self.on_record(record)
        if record["best"]:
            best.take(model)
            self.save_best(model)

    def save_best(self, model: torch.nn.Module) -> None:
        if self.weights_file is not None:
            save_weights(model, self.weights_file)
