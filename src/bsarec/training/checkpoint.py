"""Training checkpoints: the files in RUN_DIR/checkpoints, and what goes into one (model, optimizer, the
train state, every random generator the loop uses)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from bsarec.distributed import ProcessGroup
from bsarec.errors import DataError
from bsarec.io import atomic_write_bytes, is_partial_write

if TYPE_CHECKING:  # state.py imports this module
    from bsarec.training.state import TrainState

log = logging.getLogger("bsarec")


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}{name}": value for name, value in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors whose names start with `prefix`, under their names without it."""
    return {name.removeprefix(prefix): value for name, value in tensors.items() if name.startswith(prefix)}


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
        """The newest readable checkpoint (tensors, state), or None (see `newest`)."""
        newest = self.newest()
        return None if newest is None else newest[1:]

    def newest(self) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]] | None:
        """The newest readable checkpoint (its JSON file, tensors, state), or None. A damaged one is named in
        a warning and the one before it is used. Temporary files and incomplete checkpoints left by a process
        killed mid-write are removed (one trainer owns a run directory)."""
        complete = self.complete()
        if self.directory.is_dir():
            for stale in self.directory.iterdir():
                if is_partial_write(stale.name):
                    stale.unlink(missing_ok=True)
            self._remove_all_but({p.stem for p in complete})
        for path in reversed(complete):
            try:
                state = json.loads(path.read_text())
                tensors = load_safetensors(path.with_suffix(".safetensors").read_bytes())
                if not isinstance(state, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, OSError, SafetensorError) as error:  # fall back to the one before
                log.warning("checkpoint %s is damaged (%s); trying the one before it", path, error)
                continue
            return path, tensors, state
        return None


def flat_optimizer_state(state: dict[int, dict[str, Any]]) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state ({parameter index: {key: value}}) as named tensors
    ("optimizer.INDEX.KEY"), as a checkpoint stores it."""
    return {
        f"optimizer.{index}.{key}": value if isinstance(value, torch.Tensor) else torch.tensor(value)
        for index, values in state.items()
        for key, value in values.items()
    }


def optimizer_state_of(tensors: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """The per-parameter optimizer state among a checkpoint's tensors (flat_optimizer_state's inverse)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    return state


def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The optimizer's state as flat named tensors plus its JSON-able parameter groups."""
    state = optimizer.state_dict()
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]
    ]
    return flat_optimizer_state(state["state"]), groups


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list
) -> None:
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": optimizer_state_of(tensors), "param_groups": groups})


def rng_tensors(generator: torch.Generator, group: ProcessGroup) -> dict[str, torch.Tensor]:
    """The loop's generator (the same in every process) and each process's global generator (dropout).
    A collective call: every process takes part."""
    states = group.gather_states(torch.get_rng_state())
    tensors = {"rng.torch": states[0], "rng.loop": generator.get_state()}
    tensors |= {f"rng.torch.rank{rank}": s for rank, s in enumerate(states) if rank > 0}
    if torch.cuda.is_available():
        tensors |= {f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    return tensors


def restore_rng(tensors: dict[str, torch.Tensor], generator: torch.Generator, group: ProcessGroup) -> None:
    torch.set_rng_state(tensors.get(f"rng.torch.rank{group.rank}", tensors["rng.torch"]))
    generator.set_state(tensors["rng.loop"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


class TrainingCheckpoints:
    """What a run needs to continue exactly, saved and restored in one place: the model, the optimizer, the
    TrainState and every random generator the loop uses (the loop's own and each process's global one)."""

    def __init__(
        self,
        checkpointer: Checkpointer,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        state: TrainState,
        generator: torch.Generator,
        group: ProcessGroup,
    ):
        self.checkpointer, self.model, self.optimizer = checkpointer, model, optimizer
        self.state, self.generator, self.group = state, generator, group

    def save(self) -> None:
        """Every process calls this (the generators are gathered); only the main process writes."""
        rng = rng_tensors(self.generator, self.group)
        if not self.group.is_main:
            return
        optim, groups = optimizer_tensors(self.optimizer)
        state_tensors, values = self.state.state_dict()
        tensors = prefixed("model.", self.model.state_dict()) | state_tensors | optim | rng
        self.checkpointer.save(
            self.state.epoch, self.state.batch, tensors, values | {"optimizer_groups": groups}
        )

    def restore_newest(self, device: str) -> bool:
        """Load the newest complete checkpoint into model, optimizer, state and generators; False if none.
        A checkpoint that does not fit this run (another model's, or a position its history contradicts)
        raises DataError naming it."""
        saved = self.checkpointer.newest()
        if saved is None:
            return False
        path, tensors, values = saved
        check_position(path, values)
        try:
            self.model.load_state_dict(unprefixed("model.", tensors))
            restore_optimizer(self.optimizer, tensors, values["optimizer_groups"])
            restore_rng(tensors, self.generator, self.group)
            self.state.load_state_dict(tensors, values, device, self.group)
        except (KeyError, ValueError, RuntimeError, TypeError) as error:
            detail = " ".join(str(error).split())[:300]
            raise DataError(
                f"{path}: not a checkpoint of this run ({type(error).__name__}: {detail}); delete the "
                "checkpoints directory to train the run from the start"
            ) from None
        return True


def check_position(path: Path, values: dict[str, Any]) -> None:
    """A checkpoint's recorded position must be the one its file name gives, with one history record per
    finished epoch: anything else was edited or belongs elsewhere."""
    named = re.fullmatch(r"epoch(\d+)-batch(\d+)", path.stem)
    history = values.get("history")
    consistent = (
        named is not None
        and values.get("epoch") == int(named.group(1))
        and values.get("batch") == int(named.group(2))
        and isinstance(history, list)
        and len(history) == values["epoch"]
    )
    if not consistent:
        raise DataError(
            f"{path}: its position (epoch {values.get('epoch')!r}, batch {values.get('batch')!r}, "
            f"{len(history) if isinstance(history, list) else 'no'} epochs of history) does not match its name; "
            "the checkpoint was edited or is damaged (delete it to resume from the one before)"
        )
