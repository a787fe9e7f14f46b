"""Leave-one-out split and training samples, exactly as in docs/protocol.md.

For a user sequence s of length n: test target s[n-1] with input s[:n-1]; validation target s[n-2] with
input s[:n-2]; training items s[:n-2]. Inputs keep their last max_len items, left-padded with 0.
Training samples ("prefixes", the paper's): from t = s[:n-2][-max_len:], every prefix is one sample (input
t[:i], target t[i]), the empty prefix included. TV-Rec's reference builds them differently ("nonempty"): from
w = s[:n-2][-(max_len+1):], input w[:i] and target w[i] for i >= 1, so no input is empty; a user with L <=
max_len training items gives L - 1 samples instead of L, and a longer user the same max_len targets, the
first of them with one item of input instead of none. Users with a single item cannot be split and are
counted in `skipped_users`.

Padding of short inputs: "zeros" (the paper) or, as options, filling the empty slots from the sequence
itself: "cyclic" (the sequence repeated), "reflect" (mirrored without repeating the edge item) and
"symmetric" (mirrored with it), NumPy's `pad` modes. Filled slots hold real item ids, so the models treat
them as real items (they are not masked); an empty sequence stays all zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bsarec.data.dataset import SequenceDataset
from bsarec.errors import DataError


@dataclass
class EvalSet:
    """One evaluation target per user: padded inputs, targets, and the full history to exclude (CSR)."""

    inputs: torch.Tensor  # (U, max_len) int64, left padded
    targets: torch.Tensor  # (U,) int64
    history_items: torch.Tensor  # flat int64 item ids of every user's history
    history_offsets: torch.Tensor  # (U + 1,) int64
    user_rows: torch.Tensor  # (U,) dataset row of each user

    def __len__(self) -> int:
        return len(self.targets)

    def history_slice(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(row within the chunk, item) pairs of the histories of users start..stop-1."""
        lo, hi = int(self.history_offsets[start]), int(self.history_offsets[stop])
        lengths = self.history_offsets[start + 1 : stop + 1] - self.history_offsets[start:stop]
        rows = torch.repeat_interleave(torch.arange(stop - start), lengths)
        return rows, self.history_items[lo:hi]


@dataclass
class LeaveOneOutSplit:
    train_inputs: torch.Tensor  # (S, max_len) int64
    train_targets: torch.Tensor  # (S,) int64
    train_users: torch.Tensor  # (S,) dataset row of each sample's user
    valid: EvalSet
    test: EvalSet
    n_items: int
    max_len: int
    report: dict = field(default_factory=dict)


PADDING_MODES = {"zeros": None, "cyclic": "wrap", "reflect": "reflect", "symmetric": "symmetric"}


def check_padding(padding: str) -> None:
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {', '.join(PADDING_MODES)}, got {padding!r}")


def pad_left(sequence: np.ndarray, max_len: int, padding: str = "zeros") -> np.ndarray:
    """The last max_len items of `sequence`, left-padded to exactly max_len (with 0 or, see the module
    docstring, with items of the sequence itself)."""
    check_padding(padding)
    tail = np.asarray(sequence[-max_len:] if max_len > 0 else sequence[:0], dtype=np.int64)
    if PADDING_MODES[padding] is not None and 0 < len(tail) < max_len:
        return np.pad(tail, (max_len - len(tail), 0), mode=PADDING_MODES[padding])
    out = np.zeros(max_len, dtype=np.int64)
    if len(tail):
        out[max_len - len(tail) :] = tail
    return out


TRAIN_SAMPLES = ("prefixes", "nonempty")


def prefix_samples(
    train_items: np.ndarray, max_len: int, padding: str = "zeros", train_samples: str = "prefixes"
) -> tuple[np.ndarray, np.ndarray]:
    """(padded input, target) samples of one user's training items: every prefix of the last max_len items
    ("prefixes"), or every non-empty prefix of the last max_len + 1 ("nonempty"); see the module docstring."""
    check_padding(padding)
    if train_samples not in TRAIN_SAMPLES:
        raise ValueError(f"train_samples must be one of {', '.join(TRAIN_SAMPLES)}, got {train_samples!r}")
    first = 0 if train_samples == "prefixes" else 1
    t = np.asarray(train_items[-(max_len + first) :], dtype=np.int64)
    if len(t) <= first:
        return np.zeros((0, max_len), np.int64), np.zeros(0, np.int64)
    padded = np.concatenate([np.zeros(max_len, np.int64), t])
    # the window padded[i : i + max_len] ends just before t[i], so it is t[:i] left-padded
    windows = np.lib.stride_tricks.sliding_window_view(padded, max_len)[first : len(t)].copy()
    if PADDING_MODES[padding] is not None:
        for i in range(max(first, 1), min(len(t), max_len)):  # the prefixes that are neither empty nor full
            windows[i - first] = pad_left(t[:i], max_len, padding)
    return windows, t[first:].copy()


def _eval_set(inputs, targets, histories, rows) -> EvalSet:
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.concatenate(histories).astype(np.int64) if histories else np.zeros(0, np.int64)
    return EvalSet(
        inputs=torch.from_numpy(np.stack(inputs) if inputs else np.zeros((0, 0), np.int64)),
        targets=torch.as_tensor(np.asarray(targets, dtype=np.int64)),
        history_items=torch.from_numpy(flat),
        history_offsets=torch.from_numpy(offsets),
        user_rows=torch.as_tensor(np.asarray(rows, dtype=np.int64)),
    )


def choose_cold_items(dataset: SequenceDataset, share: float, seed: int) -> np.ndarray:
    """The items withheld by `cold_items`: `share` of the items that occur in the data, drawn with `seed`."""
    occurring = np.flatnonzero(dataset.item_counts()[1:]) + 1
    count = int(round(share * len(occurring)))
    return np.sort(np.random.default_rng(seed).choice(occurring, size=count, replace=False))


def leave_one_out(
    dataset: SequenceDataset,
    max_len: int = 50,
    padding: str = "zeros",
    train_samples: str = "prefixes",
    withheld: np.ndarray | None = None,
) -> LeaveOneOutSplit:
    """The split of docs/protocol.md. `withheld` items (the cold-start evaluation, docs/item_features.md) are
    removed from every user's training items, so no training input or target holds one, and validation keeps
    only the users whose target is not withheld (early stopping sees no interaction of a withheld item); the
    test set is unchanged."""
    check_padding(padding)
    train_x, train_y, train_u = [], [], []
    valid_in, valid_t, valid_h, test_in, test_t, test_h, rows = [], [], [], [], [], [], []
    skipped = 0
    for row, seq in enumerate(dataset.sequences):
        n = len(seq)
        if n < 2:
            skipped += 1
            continue
        train_items = seq[: n - 2]
        if withheld is not None:
            train_items = train_items[~np.isin(train_items, withheld)]
        x, y = prefix_samples(train_items, max_len, padding, train_samples)
        train_x.append(x)
        train_y.append(y)
        train_u.append(np.full(len(y), row, dtype=np.int64))
        valid_in.append(pad_left(seq[: n - 2], max_len, padding))
        valid_t.append(seq[n - 2])
        valid_h.append(seq[: n - 2])
        test_in.append(pad_left(seq[: n - 1], max_len, padding))
        test_t.append(seq[n - 1])
        test_h.append(seq[: n - 1])
        rows.append(row)
    if not rows:
        raise DataError(f"{dataset.name}: no user has 2 or more items; nothing to split")
    report = {
        "users_split": len(rows),
        "skipped_one_item_users": skipped,
        "padding": padding,
        "train_samples": train_samples,
    }
    valid_rows = list(range(len(rows)))
    if withheld is not None:
        valid_rows = [i for i, t in enumerate(valid_t) if not np.isin(t, withheld)]
        report |= {"withheld_items": len(withheld), "valid_users_with_warm_targets": len(valid_rows)}

    def pick(values: list) -> list:
        return [values[i] for i in valid_rows]

    return LeaveOneOutSplit(
        train_inputs=torch.from_numpy(np.concatenate(train_x)),
        train_targets=torch.from_numpy(np.concatenate(train_y)),
        train_users=torch.from_numpy(np.concatenate(train_u)),
        valid=_eval_set(pick(valid_in), pick(valid_t), pick(valid_h), pick(rows)),
        test=_eval_set(test_in, test_t, test_h, rows),
        n_items=dataset.n_items,
        max_len=max_len,
        report=report,
    )
