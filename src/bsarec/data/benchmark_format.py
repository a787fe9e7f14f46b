"""Reader for the preprocessed benchmark format of S3-Rec / FMLP-Rec / BSARec.

One line per user: `user_id item_1 item_2 ... item_n`, single spaces, items chronological, ids positive ints.

Decisions (documented in docs/data.md):
- blank lines (empty or whitespace only) are skipped and counted in the report;
- a line with a user id and no items is an error;
- one-item users are kept in the dataset (they have a history to recommend from) but cannot be split
  leave-one-out; the split reports and skips them.
- item ids are kept as they are (identity map), so the table size is max item id + 1 as in the paper; ids are
  plain ASCII digits (no sign, no "_"), and an item id above 10^8 is refused rather than allocated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bsarec.data.dataset import SequenceDataset
from bsarec.errors import DataError
from bsarec.io import atomic_write_text

MAX_ITEM_ID = 100_000_000  # the table has max item id + 1 rows (the paper's identity map)


def read_benchmark_file(path: str | Path, name: str | None = None) -> SequenceDataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    user_ids: list[int] = []
    sequences: list[np.ndarray] = []
    first_line_of_user: dict[int, int] = {}
    blank_lines = 0
    with path.open("r", encoding="utf-8", errors="strict") as handle:
        try:
            lines = list(handle)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc})") from None
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")  # a byte-order mark is not part of the first user id
    for line_no, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            blank_lines += 1
            continue
        bad = next((t for t in tokens if not _is_plain_int(t)), None)
        if bad is not None:  # int() would also take "1_000", "+4" and non-ASCII digits
            raise DataError(
                f"{path}:{line_no}: expected integer ids (digits 0-9) separated by spaces, got {bad!r}"
            )
        values = [int(t) for t in tokens]
        too_big = next((v for v in values[1:] if v > MAX_ITEM_ID), None)
        if too_big is not None:  # item ids index the embedding table: a huge one would allocate it
            raise DataError(
                f"{path}:{line_no}: item id {too_big} is beyond the largest supported, {MAX_ITEM_ID}"
            )
        user, items = values[0], values[1:]
        if user < 0:
            raise DataError(f"{path}:{line_no}: user id must be non-negative, got {user}")
        if not items:
            raise DataError(f"{path}:{line_no}: user {user} has no items (expected 'user item item ...')")
        bad_items = [i for i in items if i <= 0]
        if bad_items:
            what = "item id 0 is reserved for padding" if bad_items[0] == 0 else "item ids must be positive"
            raise DataError(f"{path}:{line_no}: {what}, got {bad_items[0]} for user {user}")
        if user in first_line_of_user:
            raise DataError(
                f"{path}:{line_no}: duplicate line for user {user} (first seen on line {first_line_of_user[user]})"
            )
        first_line_of_user[user] = line_no
        user_ids.append(user)
        sequences.append(np.asarray(items, dtype=np.int64))
    if not sequences:
        raise DataError(f"{path}: empty file (expected one line per user: 'user item item ...')")
    max_item = int(max(int(s.max()) for s in sequences))
    item_ids: list = [None, *range(1, max_item + 1)]
    report = {
        "source": str(path),
        "format": "benchmark",
        "lines": len(lines),
        "blank_lines_skipped": blank_lines,
        "one_item_users": int(sum(len(s) == 1 for s in sequences)),
    }
    return SequenceDataset(sequences, user_ids, item_ids, name=name or path.stem, report=report)


def _is_plain_int(token: str) -> bool:
    digits = token.removeprefix("-")  # a negative id is read, then refused with its own message
    return digits.isascii() and digits.isdigit() and len(digits) <= 18  # below 2**63: fits int64


def write_benchmark_file(dataset: SequenceDataset, path: str | Path) -> None:
    """Write a dataset in the benchmark format (internal ids; users numbered 1..U in order)."""
    lines = [" ".join(map(str, [row + 1, *seq.tolist()])) for row, seq in enumerate(dataset.sequences)]
    atomic_write_text(path, "\n".join(lines) + "\n")
