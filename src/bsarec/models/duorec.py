"""DuoRec (Qiu et al., WSDM 2022) as the BSARec paper ran it (docs/baselines.md, `ssl = us_x`).

The SASRec encoder; the loss adds contrastive learning between two views of the same next item:
  L = CE(h, target) + lmd_sem · InfoNCE(h', h_sem)
h is the anchor's last-slot output, h' the same input encoded again under another dropout mask, h_sem the
output for a different training sample with the same target (see `bsarec.data.same_target`). InfoNCE uses
the 2B - 2 other rows of the batch as negatives, with dot-product similarity over a temperature tau.
The three passes run as one batch of 3B: dropout masks are drawn per element, so this equals three passes.
"""

from __future__ import annotations

import torch
from torch import nn

from bsarec.models.base import StackedBlocksModel
from bsarec.models.batch import Batch
from bsarec.models.layers import init_weights
from bsarec.models.losses import info_nce, next_item_loss
from bsarec.models.sasrec import SelfAttentionBlock


class DuoRec(StackedBlocksModel):
    losses = ("ce",)
    needs_positives = True

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        max_len: int = 50,
        num_layers: int = 2,
        num_heads: int = 2,
        hidden_dropout: float = 0.5,
        attn_dropout: float = 0.5,
        tau: float = 1.0,
        lmd_sem: float = 0.1,
        sim: str = "dot",
        loss: str | None = None,
    ):
        super().__init__(n_items, hidden_size, max_len, hidden_dropout, loss)
        self.tau, self.lmd_sem, self.sim = tau, lmd_sem, sim
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(hidden_size, num_heads, hidden_dropout, attn_dropout)
            for _ in range(num_layers)
        )
        self.apply(init_weights)

    def loss(self, batch: Batch) -> torch.Tensor:
        inputs = batch["inputs"]
        h, h_aug, h_sem = self.encode(torch.cat([inputs, inputs, batch["positives"]])).split(len(inputs))
        return next_item_loss(h, self.item_embeddings, batch) + self.lmd_sem * info_nce(
            h_aug, h_sem, self.tau, self.sim
        )
