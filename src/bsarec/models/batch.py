"""The training batch a model's `loss` receives: named tensors, built by the training loop's BatchMaker
(training/sampling.py). `inputs` and `targets` are always there; the others only for the models and
objectives that ask for them (models/base.py says how a model asks)."""

from __future__ import annotations

from typing import TypedDict

import torch


class _Always(TypedDict):
    inputs: torch.Tensor  # (B, N) left-padded item windows
    targets: torch.Tensor  # (B,) the next item of each window


class Batch(_Always, total=False):  # (typing.Required needs Python 3.11; bsarec supports 3.10)
    negatives: torch.Tensor  # (B,) one sampled negative each: objectives "bce" and "bpr" (needs_negatives)
    users: torch.Tensor  # (B,) the windows' dataset rows: Caser's user embedding (needs_users)
    positives: torch.Tensor  # (B, N) another window with the same target: DuoRec, FEARec (needs_positives)
    sampled_items: torch.Tensor  # (S,) sampled softmax: negatives shared by the batch (softmax_negatives)
    sampled_log_expected: torch.Tensor  # (S,) their logQ correction, log(S · q(item))
