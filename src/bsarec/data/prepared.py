"""Writing a prepared dataset directory (`bsarec data prepare`) as safely as a run directory is written:

    OUTPUT/sequences.npz, id_maps.json, dataset.json   the dataset (data/dataset.py)
           item_features/                             its item side information, when given

A directory that holds anything else (a run, a user's files) is never written into; one that holds a prepared
dataset is replaced only with `overwrite`. Everything is written into a hidden temporary directory beside OUTPUT
and renamed into place at the end, so an error, Ctrl-C, SIGTERM or a full disk leaves OUTPUT as it was.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bsarec.data.dataset import ID_MAPS_FILE, INFO_FILE, SEQUENCES_FILE, SequenceDataset
from bsarec.data.item_features import ItemFeatures
from bsarec.errors import ConfigError
from bsarec.io import is_partial_write

FEATURES_DIR = "item_features"
OWN_NAMES = {SEQUENCES_FILE, ID_MAPS_FILE, INFO_FILE, FEATURES_DIR}


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an `output` that is a file, holds anything but a prepared dataset, or (without `overwrite`)
    holds one."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output}: a file, not a directory; --output takes a directory")
    entries = [e for e in output.iterdir() if not is_partial_write(e.name)] if output.is_dir() else []
    if not entries:
        return
    foreign = sorted(e.name for e in entries if e.name not in OWN_NAMES)
    if foreign or not SequenceDataset.is_prepared_dir(output):
        shown = ", ".join((foreign or sorted(e.name for e in entries))[:5])
        raise ConfigError(
            f"{output}: not empty and not a prepared dataset (it holds {shown}); choose a new or empty directory"
        )
    if not overwrite:
        raise ConfigError(f"{output}: holds a prepared dataset; --overwrite replaces it")


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit while preparing, so that the temporary directory is removed."""

    def leave(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, leave)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def save_prepared(
    dataset: SequenceDataset, features: ItemFeatures | None, output: str | Path, overwrite: bool = False
) -> Path:
    """Write `dataset` (and its `features`) to `output` all at once (module docstring)."""
    output = Path(output)
    check_output(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    building = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    retired = output.with_name(f".{output.name}.old-{os.getpid()}.tmp")
    with _sigterm_as_exit():
        try:
            shutil.rmtree(building, ignore_errors=True)
            dataset.save(building)
            if features is not None:
                features.save(building / FEATURES_DIR)
            if output.exists():
                os.replace(output, retired)
            os.replace(building, output)
        except BaseException:
            if retired.exists() and not output.exists():
                os.replace(retired, output)
            raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
            shutil.rmtree(retired, ignore_errors=True)
    return output
