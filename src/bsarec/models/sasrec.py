"""SASRec as the BSARec paper ran it (FMLP-Rec's variant of Kang & McAuley, ICDM 2018).

Post-LN Transformer blocks with causal self-attention and a GELU FFN of size 4d:
  A = LayerNorm(X + Dropout(MultiHeadAttention(X)))        (self-attention sub-layer)
  H = LayerNorm(A + Dropout(W_2 GELU(W_1 A)))               (point-wise FFN)
The paper trained it with BCE at the last position against one sampled negative (`loss="bce"`);
full-softmax cross-entropy (`loss="ce"`) is offered as the much stronger option.
"""

from __future__ import annotations

import torch
from torch import nn

from bsarec.models.base import StackedBlocksModel
from bsarec.models.layers import FeedForward, MultiHeadSelfAttention, init_weights


class SelfAttentionBlock(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, hidden_dropout: float, attn_dropout: float):
        super().__init__()
        self.attention = MultiHeadSelfAttention(hidden_size, num_heads, attn_dropout, hidden_dropout)
        self.ffn = FeedForward(hidden_size, hidden_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        return self.ffn(self.attention(x, mask, last_only))


class SASRec(StackedBlocksModel):
    losses = ("bce", "ce")

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        max_len: int = 50,
        num_layers: int = 2,
        num_heads: int = 2,
        hidden_dropout: float = 0.5,
        attn_dropout: float = 0.5,
        loss: str | None = None,
    ):
        super().__init__(n_items, hidden_size, max_len, hidden_dropout, loss)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(hidden_size, num_heads, hidden_dropout, attn_dropout)
            for _ in range(num_layers)
        )
        self.apply(init_weights)
