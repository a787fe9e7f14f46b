"""Training checkpoints, in torchtitan's pattern: a checkpoint is the state_dict of named stateful parts
(model, optimizer, train state, best weights, random generators), each an object with `state_dict()` and
`load_state_dict()`. `Checkpoint` saves and restores the parts; `Checkpointer` owns the files in
RUN_DIR/checkpoints (tensors as safetensors, everything else as JSON, written atomically)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from bsarec.distributed import ProcessGroup
from bsarec.errors import DataError
from bsarec.io import atomic_write_bytes, is_partial_write

log = logging.getLogger("bsarec")


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


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any], /) -> Any: ...


Saved = tuple[Path, dict[str, torch.Tensor], dict[str, Any]]  # a checkpoint read back: file, tensors, values


def flatten(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """`value` (nested dicts, lists and tuples of tensors and JSON values) as JSON, each tensor moved into
    `tensors` under its path and replaced by {"@tensor": path}; integer dict keys and tuples are marked so
    that `unflatten` gives back exactly what was saved (an optimizer's state is keyed by parameter index)."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value
        return {"@tensor": path}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: flatten(item, f"{path}.{key}", tensors) for key, item in value.items()}
        if all(isinstance(key, int) for key in value):
            return {
                "@int_keys": {
                    str(key): flatten(item, f"{path}.{key}", tensors) for key, item in value.items()
                }
            }
        raise TypeError(f"{path}: a checkpoint stores dicts keyed by str or by int, not {list(value)[:3]}")
    if isinstance(value, tuple):
        return {"@tuple": [flatten(item, f"{path}.{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [flatten(item, f"{path}.{i}", tensors) for i, item in enumerate(value)]
    return value


def unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"@tensor"}:
            return tensors[value["@tensor"]]
        if set(value) == {"@int_keys"}:
            return {int(key): unflatten(item, tensors) for key, item in value["@int_keys"].items()}
        if set(value) == {"@tuple"}:
            return tuple(unflatten(item, tensors) for item in value["@tuple"])
        return {key: unflatten(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [unflatten(item, tensors) for item in value]
    return value


def tensor_names(value: Any) -> set[str]:
    """The tensors a flattened value refers to."""
    if isinstance(value, dict):
        if set(value) == {"@tensor"}:
            return {value["@tensor"]}
        return set().union(*(tensor_names(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(tensor_names(item) for item in value))
    return set()


class RandomState:
    """The random generators a run draws from, as a stateful part: the loop's own generator (sample order,
    negatives; the same in every process) and each process's global generator (dropout). `state_dict` is a
    collective call under torchrun: every process takes part."""

    def __init__(self, generator: torch.Generator, group: ProcessGroup):
        self.generator, self.group = generator, group

    def state_dict(self) -> dict[str, Any]:
        states = self.group.gather_states(torch.get_rng_state())
        cuda = list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []
        return {"loop": self.generator.get_state(), "processes": states, "cuda": cuda}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        processes = state["processes"]
        torch.set_rng_state(processes[self.group.rank] if self.group.rank < len(processes) else processes[0])
        self.generator.set_state(state["loop"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class Checkpoint:
    """What a run needs to continue exactly: the state_dicts of its named parts, saved together as one
    checkpoint and restored together (or some parts first: `restore(saved, names)`)."""

    def __init__(self, checkpointer: Checkpointer | None, parts: dict[str, Stateful], group: ProcessGroup):
        self.checkpointer, self.parts, self.group = checkpointer, parts, group

    def save(self, epoch: int, batch: int) -> None:
        """Every process calls this (a part may gather from every process); only the main process writes."""
        if self.checkpointer is None:
            return
        states = {name: part.state_dict() for name, part in self.parts.items()}
        if not self.group.is_main:
            return
        tensors: dict[str, torch.Tensor] = {}
        values = {name: flatten(state, name, tensors) for name, state in states.items()}
        self.checkpointer.save(epoch, batch, tensors, {"epoch": epoch, "batch": batch, **values})

    def newest(self) -> Saved | None:
        return self.checkpointer.newest() if self.checkpointer is not None else None

    def restore(self, saved: Saved, names: tuple[str, ...] | None = None) -> None:
        """Load the parts `names` (all by default) from a checkpoint read by `newest`. A checkpoint that does
        not fit this run (another model's, an edited one, an older layout) raises DataError naming it."""
        path, tensors, values = saved
        check_position(path, values)
        try:
            extra = sorted(set(tensors) - tensor_names(values))  # the manifest names every tensor of the file
            if extra:
                raise ValueError(f"the file holds tensors its manifest does not name: {', '.join(extra[:3])}")
            for name in names or tuple(self.parts):
                state = unflatten(values[name], tensors)
                if isinstance(self.parts[name], torch.optim.Optimizer):
                    check_optimizer_state(self.parts[name], state)
                self.parts[name].load_state_dict(state)
        except (KeyError, ValueError, RuntimeError, TypeError) as error:
            detail = " ".join(str(error).split())[:300]
            raise DataError(
                f"{path}: not a checkpoint of this run ({type(error).__name__}: {detail}); delete the "
                "checkpoints directory to train the run from the start"
            ) from None


def check_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """torch's load_state_dict does not compare an optimizer's moments with its parameters: a checkpoint of
    another model would pass and then corrupt the step."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, values in state["state"].items():
        if not 0 <= index < len(params):
            raise ValueError(f"optimizer state for parameter {index}, but the model has {len(params)}")
        for key, value in values.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[index].shape:
                raise ValueError(
                    f"optimizer {key} of parameter {index} has shape {tuple(value.shape)}, the parameter "
                    f"{tuple(params[index].shape)}"
                )


def check_position(path: Path, values: dict[str, Any]) -> None:
    """A checkpoint's recorded position must be the one its file name gives, with one history record per
    finished epoch: anything else was edited or belongs elsewhere."""
    named = re.fullmatch(r"epoch(\d+)-batch(\d+)", path.stem)
    state = values.get("state") if isinstance(values.get("state"), dict) else {}
    history = state.get("history")
    consistent = (
        named is not None
        and values.get("epoch") == int(named.group(1)) == state.get("epoch")
        and values.get("batch") == int(named.group(2)) == state.get("batch")
        and isinstance(history, list)
        and len(history) == values["epoch"]
    )
    if not consistent:
        raise DataError(
            f"{path}: its position (epoch {values.get('epoch')!r}, batch {values.get('batch')!r}, "
            f"{len(history) if isinstance(history, list) else 'no'} epochs of history) does not match its name; "
            "the checkpoint was edited, is damaged or was written by another version of bsarec (delete it to "
            "resume from the one before)"
        )
