"""The in-memory dataset: one chronological item sequence per user, plus the maps back to original ids.

Internal item ids run 1..n_items-1 and 0 is padding, so `n_items` is the embedding table size
(max item id + 1, as the protocol says). Everything a user sees goes through `user_ids` / `item_ids`,
which hold the original ids (ints or strings) in internal-id order.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bsarec.errors import DataError
from bsarec.io import atomic_write_bytes, atomic_write_json

SEQUENCES_FILE = "sequences.npz"
ID_MAPS_FILE = "id_maps.json"
INFO_FILE = "dataset.json"


@dataclass
class SequenceDataset:
    """User sequences of internal item ids (1..n_items-1), chronological, with original-id maps."""

    sequences: list[np.ndarray]
    user_ids: list[Any]
    item_ids: list[Any]  # item_ids[i] = original id of internal item i; item_ids[0] is None (padding)
    name: str = "dataset"
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.sequences) != len(self.user_ids):
            raise DataError(f"{self.name}: {len(self.sequences)} sequences but {len(self.user_ids)} user ids")
        self._user_index: dict[str, int] | None = None
        self._item_index: dict[str, int] | None = None

    @property
    def n_items(self) -> int:
        """Embedding table size: max internal item id + 1 (row 0 is padding)."""
        return len(self.item_ids)

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def user_row(self, original_user_id: Any) -> int | None:
        """Row of a user given its original id (compared as text, so 7 and "7" are the same user)."""
        if self._user_index is None:
            self._user_index = {str(u): i for i, u in enumerate(self.user_ids)}
        return self._user_index.get(str(original_user_id))

    def item_index(self, original_item_id: Any) -> int | None:
        """Internal id of an item given its original id, or None when unknown."""
        if self._item_index is None:
            self._item_index = {str(it): i for i, it in enumerate(self.item_ids) if i > 0 and it is not None}
        return self._item_index.get(str(original_item_id))

    def forget_item_index(self) -> None:
        """Call after changing `item_ids` (items added after training)."""
        self._item_index = None

    def item_ids_fingerprint(self) -> str:
        """A digest of the item id map: features saved for this catalogue carry it."""
        return hashlib.sha256(json.dumps(self.item_ids, default=str).encode()).hexdigest()

    def fingerprint(self) -> str:
        """A digest of the id maps and the sequences: a run records it and refuses another dataset."""
        digest = hashlib.sha256(json.dumps([self.user_ids, self.item_ids], default=str).encode())
        for sequence in self.sequences:
            digest.update(np.asarray(sequence, dtype=np.int64).tobytes() + b"|")
        return digest.hexdigest()

    def stats(self) -> dict[str, Any]:
        lengths = np.array([len(s) for s in self.sequences], dtype=np.int64)
        used_items = int(np.unique(np.concatenate(self.sequences)).size) if len(lengths) else 0
        n_inter = int(lengths.sum())
        pairs = sum(int(np.unique(s).size) for s in self.sequences)
        return {
            "name": self.name,
            "users": self.num_users,
            "items": used_items,
            "item_table_size": self.n_items,
            "interactions": n_inter,
            "mean_length": float(lengths.mean()) if len(lengths) else 0.0,
            "median_length": float(np.median(lengths)) if len(lengths) else 0.0,
            "min_length": int(lengths.min()) if len(lengths) else 0,
            "max_length": int(lengths.max()) if len(lengths) else 0,
            # share of the user x item grid without an interaction: repeats of a pair count once, so that a
            # log of repeat consumption stays in [0, 1] (the paper's interactions / grid equals it without repeats)
            "sparsity": 1.0 - pairs / max(1, self.num_users * max(1, used_items)),
        }

    def item_counts(self) -> np.ndarray:
        """Interactions per internal item id over all users (length n_items)."""
        return np.bincount(np.concatenate(self.sequences), minlength=self.n_items)

    # Persistence: a directory with the sequences (npz, no pickles) and the id maps (JSON).
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        lengths = np.array([len(s) for s in self.sequences], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(self.sequences).astype(np.int64) if self.sequences else np.zeros(0, np.int64)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, items=flat, offsets=offsets)
        atomic_write_bytes(directory / SEQUENCES_FILE, buffer.getvalue())
        atomic_write_json(directory / ID_MAPS_FILE, {"users": self.user_ids, "items": self.item_ids})
        atomic_write_json(directory / INFO_FILE, {"name": self.name, "report": self.report, **self.stats()})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SequenceDataset:
        directory = Path(directory)
        for name in (SEQUENCES_FILE, ID_MAPS_FILE, INFO_FILE):
            if not (directory / name).is_file():
                raise DataError(f"{directory}: not a prepared dataset directory (missing {name})")
        path = directory / SEQUENCES_FILE
        try:
            with np.load(path, allow_pickle=False) as npz:
                flat, offsets = npz["items"], npz["offsets"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{path}: not a sequences file of a prepared dataset ({error})") from None
        maps, info = _read_object(directory / ID_MAPS_FILE), _read_object(directory / INFO_FILE)
        users, items = maps.get("users"), maps.get("items")
        if not isinstance(users, list) or not isinstance(items, list) or not items or items[0] is not None:
            raise DataError(
                f"{directory / ID_MAPS_FILE}: expected {{'users': [...], 'items': [null, ...]}} (item 0 is padding)"
            )
        valid = (
            flat.ndim == 1
            and offsets.ndim == 1
            and np.issubdtype(flat.dtype, np.integer)
            and np.issubdtype(offsets.dtype, np.integer)
            and len(offsets) == len(users) + 1
            and (len(offsets) == 0 or (offsets[0] == 0 and offsets[-1] == len(flat)))
            and bool(np.all(np.diff(offsets) >= 0))
            and (len(flat) == 0 or (flat.min() >= 1 and flat.max() < len(items)))
        )
        if not valid:
            raise DataError(
                f"{path}: does not match {ID_MAPS_FILE} ({len(users)} users, {len(items) - 1} items): "
                "item indices or sequence offsets out of range"
            )
        sequences = [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        return cls(
            sequences, users, items, name=info.get("name", directory.name), report=info.get("report", {})
        )

    @staticmethod
    def is_prepared_dir(path: str | Path) -> bool:
        return Path(path).is_dir() and (Path(path) / SEQUENCES_FILE).is_file()


def _read_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object")
    return value
