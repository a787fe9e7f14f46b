"""Full-ranking evaluation: HR@k, NDCG@k and MRR of each user's single target among all items.

The rank of the target is the number of other candidates that score strictly higher (0-based), so the
computation is vectorised and memory-bounded (chunks of users x chunks of items), with no sort.
History masking:
- "exclude" (default): the user's known items and the padding row are not candidates; a target that is
  already in the history (repeat consumption) cannot be hit.
- "zero": the reference code's behaviour: history items get score 0 and stay candidates, padding row 0
  stays a candidate.
"""

from __future__ import annotations

from typing import Any

import torch

from bsarec.data.split import EvalSet

KS = (5, 10, 20)
METRIC_NAMES = tuple(f"{m}@{k}" for k in KS for m in ("HR", "NDCG")) + ("MRR",)


def metrics_from_ranks(ranks: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Metrics from 0-based target ranks (inf = no hit possible)."""
    ranks = ranks.to(torch.float64)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"HR@{k}"] = hit.double().mean().item()
        gain = torch.where(hit, 1.0 / torch.log2(ranks.clamp(max=1e9) + 2.0), torch.zeros_like(ranks))
        out[f"NDCG@{k}"] = gain.mean().item()
    out["MRR"] = torch.where(torch.isinf(ranks), torch.zeros_like(ranks), 1.0 / (ranks + 1.0)).mean().item()
    return out


@torch.no_grad()
def target_ranks(
    model: Any,
    evalset: EvalSet,
    history_mask: str = "exclude",
    user_batch: int = 256,
    max_scores_per_chunk: int = 1 << 24,
) -> torch.Tensor:
    """0-based rank of every user's target (float, inf where the target is excluded as history)."""
    if history_mask not in ("exclude", "zero"):
        raise ValueError(f"history_mask must be 'exclude' or 'zero', got {history_mask!r}")
    was_training = getattr(model, "training", False)
    model.eval()
    table = model.item_embeddings.detach()
    n_items = table.size(0)
    ranks = torch.empty(len(evalset), dtype=torch.float64)
    for start in range(0, len(evalset), user_batch):
        stop = min(start + user_batch, len(evalset))
        users = stop - start
        h = model.encode(evalset.inputs[start:stop])
        targets = evalset.targets[start:stop]
        target_scores = (h * table[targets]).sum(-1)
        hist_rows, hist_items = evalset.history_slice(start, stop)
        target_in_history = torch.zeros(users, dtype=torch.bool)
        target_in_history[hist_rows[hist_items == targets[hist_rows]]] = True
        if history_mask == "zero":
            target_scores = torch.where(target_in_history, torch.zeros_like(target_scores), target_scores)
        fill = float("-inf") if history_mask == "exclude" else 0.0
        count = torch.zeros(users, dtype=torch.int64)
        item_chunk = max(1, max_scores_per_chunk // users)
        rows = torch.arange(users)
        for lo in range(0, n_items, item_chunk):
            hi = min(lo + item_chunk, n_items)
            scores = h @ table[lo:hi].T
            inside = (hist_items >= lo) & (hist_items < hi)
            scores[hist_rows[inside], hist_items[inside] - lo] = fill
            if history_mask == "exclude" and lo == 0:
                scores[:, 0] = float("-inf")
            own = (targets >= lo) & (targets < hi)
            scores[rows[own], targets[own] - lo] = float("-inf")  # the target does not outrank itself
            count += (scores > target_scores[:, None]).sum(1)
        chunk_ranks = count.to(torch.float64)
        if history_mask == "exclude":
            chunk_ranks[target_in_history] = float("inf")
        ranks[start:stop] = chunk_ranks
    if was_training:
        model.train()
    return ranks


def evaluate(
    model: Any, evalset: EvalSet, history_mask: str = "exclude", user_batch: int = 256
) -> dict[str, float]:
    """HR@5/10/20, NDCG@5/10/20 and MRR over all users of `evalset`."""
    return metrics_from_ranks(target_ranks(model, evalset, history_mask, user_batch))


def top_k(
    model: Any,
    inputs: torch.Tensor,
    k: int,
    exclude: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k internal item ids and scores per row; padding and each row's `exclude` items are never returned."""
    was_training = getattr(model, "training", False)
    model.eval()
    with torch.no_grad():
        scores = model.encode(inputs) @ model.item_embeddings.detach().T
    if was_training:
        model.train()
    scores[:, 0] = float("-inf")
    for row, items in enumerate(exclude or []):
        scores[row, items] = float("-inf")
    k = min(k, scores.size(1) - 1)
    values, indices = torch.topk(scores, k, dim=1)
    return indices, values
