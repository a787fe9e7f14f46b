"""Most-popular reference: every user gets the items ranked by training frequency. Not a trainable model
(models/base.py): it has only what evaluation and top-k scoring read, `encode` and `item_embeddings`, so that
`evaluate` ranks it as it ranks a model."""

from __future__ import annotations

import torch

from bsarec.data.split import LeaveOneOutSplit


class Popularity:
    """Scores an item by how often it is a training target (with the same interface as the neural models)."""

    def __init__(self, split: LeaveOneOutSplit):
        counts = torch.bincount(split.train_targets, minlength=split.n_items).float()
        self.item_embeddings = counts.unsqueeze(1)  # (V, 1): score = 1 · count

    def encode(self, input_ids: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        return torch.ones(input_ids.size(0), 1)

    def eval(self) -> Popularity:
        return self
