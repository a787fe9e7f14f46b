"""The per-epoch history of a run (history.jsonl): its learning curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bsarec.errors import DataError
from bsarec.io import atomic_write_text
from bsarec.run_dir import RunDir


class HistoryLog:
    """One JSON line per epoch, flushed as it is written so that an interrupted run keeps its history. A
    resumed run starts the file again from the records of its checkpoint."""

    def __init__(self, path: Path | None, records: list[dict[str, Any]]):
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))

    def append(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """A run's per-epoch records (loss, validation metrics, speed), in order: its learning curves."""
    path = RunDir(run_dir).history_file
    if not path.is_file():
        raise DataError(f"{path}: no such file; is {run_dir} a run directory?")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except ValueError as error:
            raise DataError(f"{path}, line {number}: expected one JSON object per epoch ({error})") from None
    return records
