"""Serving-time scoring: the top-k items of histories, with the items an answer may hold (allow, deny,
`where` on item features) and the history's own items left out. The estimator's `recommend`, batch scoring
and the HTTP service all answer through `recommend_histories`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bsarec.data.dataset import SequenceDataset
from bsarec.data.item_features import ItemFeatures
from bsarec.data.split import pad_left
from bsarec.errors import ConfigError
from bsarec.evaluation.metrics import require_finite


@dataclass
class Recommendations:
    """Top-k original item ids with scores, plus what could not be used from the request."""

    items: list[Any]
    scores: list[float]
    unknown: list[Any]
    empty_history: bool = False


@torch.no_grad()
def top_k(
    model: Any,
    inputs: torch.Tensor,
    k: int,
    exclude: list[torch.Tensor] | None = None,
    users: torch.Tensor | None = None,
    allowed: torch.Tensor | None = None,
    max_scores_per_chunk: int = 1 << 24,
    encode: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k internal item ids and scores per row; padding, each row's `exclude` items and the items outside
    `allowed` (a (V,) bool mask) are never returned (they score -inf; callers drop non-finite entries).
    The items are scored a chunk at a time and merged into a running top-k, so memory stays bounded by
    `max_scores_per_chunk` scores whatever the size of the catalogue. `encode` replaces the model's encoder
    (the service's ONNX engine); the scoring against the item table is the same either way."""
    was_training = getattr(model, "training", False)
    model.eval()
    table = model.item_embeddings.detach()
    device = table.device
    encode = encode or model.encode
    h = encode(inputs.to(device), users=users.to(device) if users is not None else None)
    if was_training:
        model.train()
    require_finite(table, "item embeddings")
    require_finite(h, "user representations")
    rows, n_items = h.size(0), table.size(0)
    k = min(k, n_items - 1)
    lengths = torch.tensor([len(items) for items in exclude or []], dtype=torch.int64)
    excluded_rows = torch.repeat_interleave(torch.arange(len(lengths)), lengths).to(device)
    excluded_items = [torch.as_tensor(items, dtype=torch.int64) for items in exclude or []]
    excluded_items = torch.cat(excluded_items or [torch.zeros(0, dtype=torch.int64)]).to(device)
    allowed = allowed.to(device) if allowed is not None else None
    best_scores = torch.empty(rows, 0, device=device)
    best_items = torch.empty(rows, 0, dtype=torch.int64, device=device)
    item_chunk = max(k, max_scores_per_chunk // max(rows, 1))
    for lo in range(0, n_items, item_chunk):
        hi = min(lo + item_chunk, n_items)
        scores = h @ table[lo:hi].T
        if lo == 0:
            scores[:, 0] = float("-inf")
        if allowed is not None:
            scores[:, ~allowed[lo:hi]] = float("-inf")
        inside = (excluded_items >= lo) & (excluded_items < hi)
        scores[excluded_rows[inside], excluded_items[inside] - lo] = float("-inf")
        values, indices = torch.topk(scores, min(k, hi - lo), dim=1)
        merged_scores = torch.cat([best_scores, values], 1)
        merged_items = torch.cat([best_items, indices + lo], 1)
        best_scores, order = torch.topk(merged_scores, min(k, merged_scores.size(1)), dim=1)
        best_items = merged_items.gather(1, order)
    return best_items.cpu(), best_scores.cpu()


def candidate_mask(
    dataset: SequenceDataset,
    item_features: ItemFeatures | None,
    allow: list[Any] | None,
    deny: list[Any] | None,
    where: dict[str, list[Any]] | None = None,
) -> torch.Tensor | None:
    """The items an answer may hold (None: all), refusing, with the reason, conditions that leave none: an
    empty answer would give none."""
    if where is not None:
        if item_features is None:
            raise ConfigError("where: this run has no item features to select by")
        matching = torch.from_numpy(item_features.matching(where))
        if not matching.any():
            raise ConfigError(f"where: no item holds {where}")
        rest = candidate_mask(dataset, item_features, allow, deny)
        if rest is None:
            return matching
        if allow is not None and not (matching & rest).any():
            raise ConfigError(f"where: none of the allowed items holds {where}")
        return matching & rest
    if allow is None and deny is None:
        return None
    mask = torch.ones(dataset.n_items, dtype=torch.bool)
    if allow is not None:
        if not allow:
            raise ConfigError("allow: an empty list allows no item; leave it out to allow every item")
        known = [i for i in (dataset.item_index(i) for i in allow) if i is not None]
        if not known:
            raise ConfigError(
                f"allow: none of its {len(allow)} ids is in the catalogue (first: {allow[0]!r})"
            )
        mask[:] = False
        mask[known] = True
    for index in (dataset.item_index(i) for i in deny or []):
        if index is not None:
            mask[index] = False
    return mask


def recommend_histories(
    model: Any,
    dataset: SequenceDataset,
    histories: list[list[int]],
    unknowns: list[list[Any]],
    rows: list[int | None],
    k: int,
    max_len: int,
    padding: str,
    exclude_seen: bool,
    allowed: torch.Tensor | None = None,
    encode: Any = None,
) -> list[Recommendations]:
    """Recommendations for histories of internal item ids (their dataset rows, for Caser's user embedding,
    where known), in original item ids."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    inputs = torch.from_numpy(
        np.stack([pad_left(np.asarray(h, np.int64), max_len, padding) for h in histories])
    )
    exclude = [torch.as_tensor(h, dtype=torch.int64) for h in histories] if exclude_seen else None
    users = torch.tensor([row if row is not None else 0 for row in rows])  # Caser: raw histories use row 0
    indices, scores = top_k(model, inputs, k, exclude, users=users, allowed=allowed, encode=encode)
    out = []
    for i, history in enumerate(histories):
        keep = torch.isfinite(scores[i])
        out.append(
            Recommendations(
                items=[dataset.item_ids[j] for j in indices[i][keep].tolist()],
                scores=scores[i][keep].tolist(),
                unknown=unknowns[i],
                empty_history=len(history) == 0,
            )
        )
    return out
