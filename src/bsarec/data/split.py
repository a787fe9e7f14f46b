"""Leave-one-out split and training samples, exactly as in PROTOCOL.md.

For a user sequence s of length n: test target s[n-1] with input s[:n-1]; validation target s[n-2] with
input s[:n-2]; training items s[:n-2]. Inputs keep their last max_len items, left-padded with 0.
Training samples: from t = s[:n-2][-max_len:], every prefix is one sample (input t[:i], target t[i]),
the empty prefix included. Users with a single item cannot be split and are counted in `skipped_users`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bsarec.data.dataset import SequenceDataset


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
    valid: EvalSet
    test: EvalSet
    n_items: int
    max_len: int
    report: dict = field(default_factory=dict)


PADDING_MODES = ("zeros",)


def pad_left(sequence: np.ndarray, max_len: int) -> np.ndarray:
    """The last max_len items of `sequence`, left-padded with 0 to exactly max_len."""
    out = np.zeros(max_len, dtype=np.int64)
    tail = np.asarray(sequence[-max_len:] if max_len > 0 else sequence[:0], dtype=np.int64)
    if len(tail):
        out[max_len - len(tail) :] = tail
    return out


def prefix_samples(train_items: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every prefix of the last max_len training items as one (padded input, target) sample."""
    t = np.asarray(train_items[-max_len:], dtype=np.int64)
    if len(t) == 0:
        return np.zeros((0, max_len), np.int64), np.zeros(0, np.int64)
    padded = np.concatenate([np.zeros(max_len, np.int64), t])
    # the window padded[i : i + max_len] ends just before t[i], so it is t[:i] left-padded
    windows = np.lib.stride_tricks.sliding_window_view(padded, max_len)[: len(t)]
    return windows.copy(), t.copy()


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


def leave_one_out(dataset: SequenceDataset, max_len: int = 50) -> LeaveOneOutSplit:
    train_x, train_y = [], []
    valid_in, valid_t, valid_h, test_in, test_t, test_h, rows = [], [], [], [], [], [], []
    skipped = 0
    for row, seq in enumerate(dataset.sequences):
        n = len(seq)
        if n < 2:
            skipped += 1
            continue
        x, y = prefix_samples(seq[: n - 2], max_len)
        train_x.append(x)
        train_y.append(y)
        valid_in.append(pad_left(seq[: n - 2], max_len))
        valid_t.append(seq[n - 2])
        valid_h.append(seq[: n - 2])
        test_in.append(pad_left(seq[: n - 1], max_len))
        test_t.append(seq[n - 1])
        test_h.append(seq[: n - 1])
        rows.append(row)
    if not rows:
        raise ValueError(f"{dataset.name}: no user has 2 or more items; nothing to split")
    report = {"users_split": len(rows), "skipped_one_item_users": skipped}
    return LeaveOneOutSplit(
        train_inputs=torch.from_numpy(np.concatenate(train_x)),
        train_targets=torch.from_numpy(np.concatenate(train_y)),
        valid=_eval_set(valid_in, valid_t, valid_h, rows),
        test=_eval_set(test_in, test_t, test_h, rows),
        n_items=dataset.n_items,
        max_len=max_len,
        report=report,
    )
