"""GRU4Rec as the BSARec paper ran it (RecBole-style, docs/baselines.md; Tan et al., DLRS 2016 augmentation).

  E = Dropout(item embeddings of the N slots)                     (no position embedding)
  H = GRU(E)                                                      num_layers layers, no bias, over all N slots
  y = W H[N-1] + b                                                the newest item's slot
Loss: BPR with one sampled negative, mean of -log(1e-10 + sigmoid(y · q_target - y · q_negative)).
Init: Linear and Embedding N(0, 0.02); the GRU's first layer Xavier-uniform, other layers PyTorch's default.
"""

from __future__ import annotations

import torch
from torch import nn

from bsarec.models.base import SequentialModel
from bsarec.models.batch import Batch
from bsarec.models.layers import Dropout, init_weights


class GRU4Rec(SequentialModel):
    losses = ("bpr",)

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        max_len: int = 50,
        num_layers: int = 2,
        gru_hidden_size: int = 64,
        hidden_dropout: float = 0.5,
        loss: str | None = None,
    ):
        super().__init__(n_items, loss)
        self.max_len = max_len
        self.item = nn.Embedding(n_items, hidden_size, padding_idx=0)
        self.dropout = Dropout(hidden_dropout)
        self.gru = nn.GRU(hidden_size, gru_hidden_size, num_layers, bias=False, batch_first=True)
        self.dense = nn.Linear(gru_hidden_size, hidden_size)
        self.apply(init_weights)
        nn.init.xavier_uniform_(self.gru.weight_ih_l0)
        nn.init.xavier_uniform_(self.gru.weight_hh_l0)

    @property
    def item_embeddings(self) -> torch.Tensor:
        return self.item.weight

    def item_table(self) -> nn.Module:
        return self.item

    def set_item_table(self, table: nn.Module) -> None:
        self.item = table

    def encode(self, input_ids: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        states, _ = self.gru(self.dropout(self.item(input_ids)))
        return self.dense(states[:, -1])  # the dense layer is per slot; only the last slot is read

    def loss(self, batch: Batch) -> torch.Tensor:
        y = self.encode(batch["inputs"])
        table = self.item_embeddings
        margin = (y * (table[batch["targets"]] - table[batch["negatives"]])).sum(-1)
        return -torch.log(1e-10 + torch.sigmoid(margin)).mean()
