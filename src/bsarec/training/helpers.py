"""Small helpers for the training loop: early stopping, the history file, weights I/O, negatives."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from bsarec.errors import DataError
from bsarec.io import atomic_write_bytes, atomic_write_text

HISTORY_FILE = "history.jsonl"


class EarlyStopping:
    """Keeps the best score (strictly better only, as the reference) and counts epochs without improvement."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_score = float("-inf")
        self.best_epoch = -1
        self.bad_epochs = 0

    def state(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def restore(self, state: dict[str, Any]) -> None:
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


class HistoryLog:
    """One JSON line per epoch, flushed as it is written so that an interrupted run keeps its history."""

    def __init__(self, path: Path | None, records: list[dict[str, Any]] | None = None):
        self.path = path
        self.records: list[dict[str, Any]] = list(records or [])
        if path is not None:  # a resumed run starts from the records of its checkpoint
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in self.records))

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path is not None:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """A run's per-epoch records (loss, validation metrics, speed), in order: its learning curves."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such file; is {run_dir} a run directory?")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except ValueError as error:
            raise DataError(f"{path}, line {number}: expected one JSON object per epoch ({error})") from None
    return records


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


class Checkpointer:
    """Training checkpoints in RUN_DIR/checkpoints: tensors (model, optimizer, best weights, RNG states, the
    epoch's sample order) as safetensors and the rest (position, early stopping, history) as JSON. Each pair
    is written atomically, tensors first: a JSON file marks a complete checkpoint. The last `keep` are kept;
    a checkpoint is deleted JSON first, so that a kill in between leaves tensors that are swept up later."""

    def __init__(self, directory: Path, keep: int = 2):
        self.directory = Path(directory)
        self.keep = max(1, keep)

    def save(self, epoch: int, batch: int, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
        name = f"epoch{epoch:04d}-batch{batch:06d}"
        cpu = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
        atomic_write_bytes(self.directory / f"{name}.safetensors", save_safetensors(cpu))
        atomic_write_bytes(self.directory / f"{name}.json", json.dumps(state).encode())
        self._remove_all_but({p.stem for p in self.complete()[-self.keep :]})
        return self.directory / f"{name}.json"

    def _remove_all_but(self, kept: set[str]) -> None:
        """Delete every checkpoint not named in `kept`, complete or a half left by a killed process."""
        stale = [p for p in self.directory.glob("epoch*") if p.stem not in kept]
        for path in sorted(stale, key=lambda p: p.suffix != ".json"):
            path.unlink(missing_ok=True)

    def complete(self) -> list[Path]:
        """The JSON files of the complete checkpoints (a JSON file is written after its tensors), oldest
        first; reads and changes nothing else."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.glob("epoch*.json") if p.with_suffix(".safetensors").is_file()
        )

    def latest(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The newest complete checkpoint (tensors, state), or None. Temporary files and incomplete
        checkpoints left by a process killed mid-write are removed (one trainer owns a run directory)."""
        complete = self.complete()
        if self.directory.is_dir():
            for stale in self.directory.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
            self._remove_all_but({p.stem for p in complete})
        for path in reversed(complete):
            try:
                state = json.loads(path.read_text())
                tensors = load_safetensors(path.with_suffix(".safetensors").read_bytes())
            except (ValueError, OSError):  # a damaged file: fall back to the one before
                continue
            return tensors, state
        return None


def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The optimizer's state as flat named tensors plus its JSON-able parameter groups."""
    state = optimizer.state_dict()
    tensors = {
        f"optimizer.{index}.{key}": value if isinstance(value, torch.Tensor) else torch.tensor(value)
        for index, values in state["state"].items()
        for key, value in values.items()
    }
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]
    ]
    return tensors, groups


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def denormals_flushed() -> bool:
    """Whether the CPU flushes denormal floats to zero now (torch can set the mode but not read it)."""
    return bool((torch.tensor([2.0**-140]) * 1.0 == 0).item())


@contextmanager
def cpu_denormal_mode(flush: bool) -> Iterator[bool]:
    """Flush denormal floats to zero (or not) inside the block, then restore the mode found; yields whether
    this CPU supports flushing. The mode is process state, and other code (Hypothesis, for one) needs IEEE
    gradual underflow."""
    before = denormals_flushed()
    supported = torch.set_flush_denormal(flush)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(before)
