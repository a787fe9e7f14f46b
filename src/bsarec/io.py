"""Atomic file writes (a temp file in the same directory, fsync, then rename, so no reader sees half a file),
and model weights as safetensors."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from bsarec.errors import DataError


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux); elsewhere set and reset."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_partial_write(name: str) -> bool:
    """Whether a file name is the temporary file of an atomic write (".NAME.XXXX.tmp"), left by a killed
    process."""
    return name.startswith(".") and name.endswith(".tmp")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically, with the permissions an ordinary write would give (0666 less the
    umask: mkstemp's private 0600 would hide runs and prepared data from a teammate or a service account)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Standard JSON: a NaN or infinite number (an undefined statistic) is written as null, which every JSON
    reader accepts, never as the bare NaN that strict readers refuse."""
    text = json.dumps(_finite_or_null(obj), indent=1, default=_json_default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # a NumPy or torch scalar
        return _finite_or_null(value.item())
    return value


def _json_default(value: Any) -> Any:
    # numpy scalars show up in reports and metrics
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Weights as safetensors, written atomically (no pickles anywhere)."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save_safetensors(state))


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Weights from a safetensors file, copied onto the model's device (safetensors holds tensors only).
    A file that is damaged or does not fit the model raises DataError naming it."""
    try:
        tensors = load_safetensors(Path(path).read_bytes())
    except (SafetensorError, OSError, ValueError) as error:
        raise DataError(
            f"{path}: not a readable safetensors file ({type(error).__name__}: {error})"
        ) from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:400]
        raise DataError(
            f"{path}: does not fit the model its run's config and dataset describe ({detail})"
        ) from None
