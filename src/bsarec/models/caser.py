"""Caser (Tang & Wang, WSDM 2018) as the BSARec paper ran it (a port of RecBole's version, docs/baselines.md).

The window E (N x d) of item vectors, with no position embedding, is read by two kinds of convolution:
  vertical:    o_v = sum_n F_v[n] · E[n]                        nv filters of size N x 1      (weighted sums of rows)
  horizontal:  o_h = max_t ReLU(F_k * E[t : t+k])               nh filters of size k x d, for every k = 1..N
  z = ReLU(W_1 Dropout([o_v; o_h]) + b_1)                        (656 features -> d with the defaults)
  y = ReLU(W_2 [z; P_u] + b_2)                                   the user vector P_u joins here
Scores are y · item table (tied). Loss: BCE on the target and one sampled negative, plus L2 terms
reg_weight · (||P|| + ||Q|| + ||F_v|| + ||W_1|| + ||W_2||) + reg_weight · sum_k ||F_k|| (plain norms, not squared).

Kept quirks: the window is the full max_len (50 horizontal convolutions), and user ids are 0-based dataset rows
in a table whose row 0 is the padding row, so the first user's vector moves only through the L2 term.
A raw history with no known user is scored with that row-0 vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bsarec.models.base import SequentialModel
from bsarec.models.batch import Batch
from bsarec.models.layers import Dropout, init_weights
from bsarec.models.losses import target_negative_bce


class Caser(SequentialModel):
    losses = ("bce",)
    needs_users = True

    def __init__(
        self,
        n_items: int,
        n_users: int,
        hidden_size: int = 64,
        max_len: int = 50,
        nh: int = 8,
        nv: int = 4,
        hidden_dropout: float = 0.5,
        reg_weight: float = 1e-4,
        loss: str | None = None,
    ):
        super().__init__(n_items, loss)
        self.max_len, self.reg_weight = max_len, reg_weight
        self.item = nn.Embedding(n_items, hidden_size, padding_idx=0)
        self.user = nn.Embedding(n_users, hidden_size, padding_idx=0)
        self.conv_v = nn.Conv2d(1, nv, (max_len, 1))
        self.conv_h = nn.ModuleList(nn.Conv2d(1, nh, (k, hidden_size)) for k in range(1, max_len + 1))
        self.dropout = Dropout(hidden_dropout)
        self.fc1 = nn.Linear(nv * hidden_size + nh * max_len, hidden_size)
        self.fc2 = nn.Linear(2 * hidden_size, hidden_size)
        self.apply(init_weights)  # Linear and Embedding only: the convolutions keep PyTorch's init

    @property
    def item_embeddings(self) -> torch.Tensor:
        return self.item.weight

    def item_table(self) -> nn.Module:
        return self.item

    def set_item_table(self, table: nn.Module) -> None:
        self.item = table

    def encode(self, input_ids: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        if users is None:
            users = input_ids.new_zeros(input_ids.size(0))
        e = self.item(input_ids)  # (B, N, d)
        o_v = torch.einsum("bnd,vn->bvd", e, self.conv_v.weight[:, 0, :, 0]) + self.conv_v.bias[:, None]
        rows = e.transpose(1, 2)  # (B, d, N): a k x d filter over rows is a 1-d convolution with d channels
        o_h = [
            F.relu(F.conv1d(rows, conv.weight[:, 0].transpose(1, 2), conv.bias)).amax(-1)
            for conv in self.conv_h
        ]
        z = F.relu(self.fc1(self.dropout(torch.cat([o_v.flatten(1), *o_h], 1))))
        return F.relu(self.fc2(torch.cat([z, self.user(users)], 1)))

    def loss(self, batch: Batch) -> torch.Tensor:
        h = self.encode(batch["inputs"], batch["users"])
        bce = target_negative_bce(h, self.item_embeddings, batch["targets"], batch["negatives"])
        weights = [self.user.weight, self.item.weight, self.conv_v.weight, self.fc1.weight, self.fc2.weight]
        reg = sum(w.norm(2) for w in weights) + sum(conv.weight.norm(2) for conv in self.conv_h)
        return bce + self.reg_weight * reg
