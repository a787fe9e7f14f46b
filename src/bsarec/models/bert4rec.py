"""BERT4Rec as the BSARec paper ran it (docs/baselines.md), which differs from Sun et al. (CIKM 2019).

The SASRec encoder with a bidirectional mask (a key is visible iff its slot is not padding), and an item
table of V + 1 rows whose last row is the mask token. One training step, as executed by the reference code:
  1. m = int(N · mask_ratio) slots are drawn uniformly without replacement (padding slots too);
  2. they are replaced by the mask token, and the encoder runs on the result;
  3. the output at the last of the m drawn slots (a uniformly random slot) is scored against all V + 1 rows
     and trained with cross-entropy against the sample's next item.
(The reference also computes a masked-item loss and then overwrites it, so it never trains; we skip it.)
Evaluation input: the history shifted left by one slot with the mask token in the last slot, whose output is
scored against the V real rows.
"""

from __future__ import annotations

import torch
from torch import nn

from bsarec.models.base import StackedBlocksModel
from bsarec.models.batch import Batch
from bsarec.models.layers import bidirectional_padding_mask, init_weights
from bsarec.models.losses import next_item_loss
from bsarec.models.sasrec import SelfAttentionBlock


class BERT4Rec(StackedBlocksModel):
    losses = ("ce",)

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        max_len: int = 50,
        num_layers: int = 2,
        num_heads: int = 2,
        hidden_dropout: float = 0.5,
        attn_dropout: float = 0.5,
        mask_ratio: float = 0.2,
        loss: str | None = None,
    ):
        super().__init__(n_items + 1, hidden_size, max_len, hidden_dropout, loss)
        self.n_items = n_items
        self.mask_token = n_items
        self.mask_count = int(max_len * mask_ratio)
        if not 1 <= self.mask_count <= max_len:
            raise ValueError(f"mask_ratio {mask_ratio} masks {self.mask_count} of {max_len} slots; need >= 1")
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(hidden_size, num_heads, hidden_dropout, attn_dropout)
            for _ in range(num_layers)
        )
        self.apply(init_weights)

    @property
    def item_embeddings(self) -> torch.Tensor:
        return self.embedding.item.weight[: self.n_items]  # the mask row is never recommended

    def block_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        return bidirectional_padding_mask(input_ids)

    def with_mask_token(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The evaluation input: drop the oldest slot, append the mask token."""
        return torch.cat([input_ids[:, 1:], torch.full_like(input_ids[:, :1], self.mask_token)], 1)

    def encode(self, input_ids: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward(self.with_mask_token(input_ids), last_only=True)

    def hidden_states(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        return super().hidden_states(self.with_mask_token(input_ids))

    def attention_maps(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        return super().attention_maps(self.with_mask_token(input_ids))

    def loss(self, batch: Batch) -> torch.Tensor:
        inputs = batch["inputs"]
        b, n = inputs.shape
        slots = torch.rand(b, n, device=inputs.device).argsort(1)[:, : self.mask_count]  # step 1
        masked = inputs.scatter(1, slots, self.mask_token)  # step 2
        read = self.forward(masked)[torch.arange(b, device=inputs.device), slots[:, -1]]  # step 3
        # scored against the whole table, mask row included, as the reference trains it
        return next_item_loss(read, self.embedding.item.weight, batch)
