"""Item representations from side information, shared by every model (docs/item_features.md).

Every model keeps its items in one `nn.Embedding` (its `item_table()`), read on the input side (the rows of a
sequence) and on the output side (the scoring table). `attach_item_features` puts a `FeatureItemEmbedding` in its
place, so both sides see, for item i,
    e_i = [id_i]  +  Σ_fields mean(E_field[codes of i])  +  Σ_vectors (W_field v_i, or m_field where i has none)
where [id_i] is the id embedding, left out for items that no training sample holds (their id row would never be
trained) and for every item with `features_only`; with `id_dropout` p, each training step also leaves it out for
a random share p of the items, so that the model learns to rank items by their features alone, as it must rank
new ones (DropoutNet's idea). Codes include the explicit "missing" code 0, which has its own learned row, so an
item without a category is not mistaken for one. Row 0 (padding) keeps only its id row.
The whole table is computed once per training step: it is cached until the weights change (an optimizer step)
or a backward pass has consumed it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bsarec.data.item_features import MISSING, ItemFeatures
from bsarec.models.base import SequentialModel


class FeatureItemEmbedding(nn.Module):
    """A drop-in for the model's item `nn.Embedding`: `weight` is the (rows, d) table of item representations,
    `forward(ids)` its rows. Rows beyond the features (BERT4Rec's mask token) have their id row only; rows
    beyond the id table (items added after training, `extend`) their features only. An item without an id part
    has its id row at zero, kept there by zeroing that row's gradient (cheaper than masking the whole table at
    every step; Adam then never moves it)."""

    def __init__(
        self,
        ids: nn.Embedding,
        features: ItemFeatures,
        trained_ids: torch.Tensor,
        features_only: bool = False,
        id_dropout: float = 0.0,
    ):
        super().__init__()
        if not features.names:
            raise ValueError("item features without a field")
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError(f"id_dropout: a share in [0, 1), got {id_dropout}")
        dim = ids.embedding_dim
        self.ids = ids
        self.padding_idx = ids.padding_idx
        self.features_only, self.id_dropout = features_only, id_dropout
        self.categorical = nn.ModuleList(
            nn.EmbeddingBag(len(f.vocabulary) + 1, dim, mode="mean") for f in features.categorical
        )
        self.projections = nn.ModuleList(
            nn.Linear(f.vectors.shape[1], dim, bias=False) for f in features.dense
        )
        self.missing = nn.Parameter(torch.zeros(len(features.dense), dim))
        for bag in self.categorical:
            nn.init.normal_(bag.weight, std=0.02)
        for projection in self.projections:
            nn.init.normal_(projection.weight, std=0.02)
        nn.init.normal_(self.missing, std=0.02)
        self.names = features.names
        without_id = ~trained_ids.clone().bool()
        without_id[0] = False  # padding keeps its id row, as without features
        if features_only:
            without_id[1:] = True
        self.register_buffer("without_id", torch.nonzero(without_id).flatten(), persistent=False)
        with torch.no_grad():
            ids.weight[self.without_id] = 0.0
        ids.weight.register_post_accumulate_grad_hook(self._keep_id_rows_at_zero)
        self._cache: tuple[tuple, torch.Tensor] | None = None
        self._set_features(features)

    def _keep_id_rows_at_zero(self, weight: torch.Tensor) -> None:
        if weight.grad is not None:
            weight.grad.index_fill_(0, self.without_id, 0.0)

    def _set_features(self, features: ItemFeatures) -> None:
        """The per-item data as non-persistent buffers (it is kept in the run's item_features directory). For a
        dense field, `absent` is 1 where an item (not padding) has no vector: it gets the field's missing one."""
        self.n_featured = features.n_items
        self.n_rows = max(self.ids.num_embeddings, self.n_featured)
        device = self.ids.weight.device
        for i, f in enumerate(features.categorical):
            codes, offsets = learned_codes(f.codes, f.offsets, self.categorical[i].num_embeddings)
            self.register_buffer(f"codes{i}", torch.from_numpy(codes).long().to(device), persistent=False)
            starts = torch.from_numpy(offsets[:-1]).long().to(device)
            self.register_buffer(f"offsets{i}", starts, persistent=False)
        for i, f in enumerate(features.dense):
            vectors = torch.from_numpy(f.vectors).float().to(device)
            self.register_buffer(f"vectors{i}", vectors, persistent=False)
            absent = torch.from_numpy(~f.present).float().unsqueeze(1)
            absent[0] = 0.0
            self.register_buffer(f"absent{i}", absent.to(device), persistent=False)
        self._cache = None

    def extend(self, features: ItemFeatures) -> None:
        """Take `features` (this module's items followed by new ones, data/item_features.py's `appended`) as
        the item data: the new items, beyond the id table, are represented by their features alone."""
        if self.ids.num_embeddings > self.n_featured:
            raise ValueError("this model keeps extra rows after its items (BERT4Rec's mask token)")
        self._set_features(features)

    @property
    def embedding_dim(self) -> int:
        return self.ids.embedding_dim

    @property
    def num_embeddings(self) -> int:
        return self.n_rows

    def feature_part(self) -> torch.Tensor:
        """Σ of the fields' contributions, (n_featured, d); padding has none (an empty bag, a zero vector)."""
        parts = [
            bag(getattr(self, f"codes{i}"), getattr(self, f"offsets{i}"))
            for i, bag in enumerate(self.categorical)
        ]
        for i, projection in enumerate(self.projections):
            parts.append(
                projection(getattr(self, f"vectors{i}")) + getattr(self, f"absent{i}") * self.missing[i]
            )
        return parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)

    def table(self) -> torch.Tensor:
        ids, features = self.ids.weight, self.feature_part()
        if self.training and self.id_dropout > 0:
            # this step, a random share of the items are their features alone
            keep = torch.rand(len(ids), 1, device=ids.device) >= self.id_dropout
            keep[0] = True  # padding has no features to stand in
            ids = ids * keep  # not rescaled: an item without its id part is what a new item looks like
        if self.n_rows > len(ids):  # items added after training have no id row
            ids = torch.cat([ids, ids.new_zeros(self.n_rows - len(ids), ids.size(1))])
        if self.n_rows > self.n_featured:  # BERT4Rec's mask token has no features
            features = torch.cat(
                [features, features.new_zeros(self.n_rows - self.n_featured, features.size(1))]
            )
        return ids + features

    @property
    def weight(self) -> torch.Tensor:
        key = (
            torch.is_grad_enabled(),
            self.training,
            self.n_rows,
            self.ids.weight.device,
            *(p._version for p in self.parameters()),
        )
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        table = self.table()
        self._cache = (key, table)
        if table.requires_grad:  # a backward pass frees the table's graph: compute it anew afterwards
            table.register_hook(self._forget)
        return table

    def _forget(self, grad: torch.Tensor) -> torch.Tensor:
        self._cache = None
        return grad

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # as nn.Embedding with its padding_idx: the padding row gets no gradient from the inputs
        return F.embedding(input_ids, self.weight, padding_idx=self.padding_idx)

    def plain(self) -> nn.Embedding:
        """An nn.Embedding holding the current table (for export: the same scores without the feature graph)."""
        with torch.no_grad():
            table = self.table()
        frozen = nn.Embedding(self.n_rows, self.embedding_dim, padding_idx=self.padding_idx)
        frozen.weight.data.copy_(table)
        return frozen


def learned_codes(codes: np.ndarray, offsets: np.ndarray, n_vectors: int) -> tuple[np.ndarray, np.ndarray]:
    """A categorical field's CSR lists without the codes the model has no vector for (values that only added
    items carry, data/item_features.py's `conform`); an item left with none gets the missing code."""
    keep = codes < n_vectors
    if keep.all():
        return codes, offsets
    n_items = len(offsets) - 1
    owner = np.repeat(np.arange(n_items), np.diff(offsets))
    emptied = np.flatnonzero(
        (np.bincount(owner, minlength=n_items) > 0) & (np.bincount(owner[keep], minlength=n_items) == 0)
    )
    owner = np.concatenate([owner[keep], emptied])
    codes = np.concatenate([codes[keep], np.full(len(emptied), MISSING, dtype=codes.dtype)])
    order = np.argsort(owner, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n_items))]).astype(offsets.dtype)
    return codes[order], offsets


def attach_item_features(
    model: SequentialModel,
    features: ItemFeatures,
    trained_ids: torch.Tensor,
    features_only: bool = False,
    id_dropout: float = 0.0,
) -> SequentialModel:
    """Replace the model's item table by a FeatureItemEmbedding over the same id rows (in place)."""
    ids = model.item_table()
    if not isinstance(ids, nn.Embedding):
        raise TypeError(f"{type(model).__name__}.item_table() is not an nn.Embedding")
    if ids.num_embeddings < features.n_items:
        raise ValueError(f"item features for {features.n_items} rows, but the model has {ids.num_embeddings}")
    model.set_item_table(FeatureItemEmbedding(ids, features, trained_ids, features_only, id_dropout))
    return model


def freeze_item_features(model: SequentialModel) -> SequentialModel:
    """Replace a FeatureItemEmbedding by a plain embedding of its current table (in place; for export)."""
    table = model.item_table()
    if isinstance(table, FeatureItemEmbedding):
        model.set_item_table(table.plain())
    return model
