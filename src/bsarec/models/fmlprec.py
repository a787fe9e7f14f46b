"""FMLP-Rec (Zhou et al., WWW 2022) as the BSARec paper ran it (docs/baselines.md; the authors' release).

Each block replaces self-attention by a learnable filter in the frequency domain, then the FFN:
  X_f = rfft(X) along positions (orthonormal)                     (Eq. 3)
  X~  = irfft(W ⊙ X_f)                                            (Eq. 4-5; W a learned complex N//2+1 x d filter)
  F   = LayerNorm(X + Dropout(X~)),  H = LayerNorm(F + Dropout(W_2 GELU(W_1 F)))
No attention mask: padding slots take part in the circular filtering. Loss: last slot, one sampled negative,
mean of -log(sigmoid(s+) + 1e-24) - log(1 - sigmoid(s-) + 1e-24). The filters start equal in every layer
(the reference deep-copies one block).
"""

from __future__ import annotations

import torch
from torch import nn

from bsarec.models.base import StackedBlocksModel
from bsarec.models.batch import Batch
from bsarec.models.layers import Dropout, FeedForward, init_weights


class FilterLayer(nn.Module):
    def __init__(self, hidden_size: int, dropout: float, complex_weight: torch.Tensor):
        super().__init__()
        self.complex_weight = nn.Parameter(complex_weight.clone())  # (1, N//2+1, d, 2): real, imaginary
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(x, dim=1, norm="ortho") * torch.view_as_complex(self.complex_weight)
        filtered = torch.fft.irfft(spectrum, n=x.size(1), dim=1, norm="ortho")
        return self.norm(x + self.dropout(filtered))


class FilterBlock(nn.Module):
    def __init__(self, hidden_size: int, dropout: float, complex_weight: torch.Tensor):
        super().__init__()
        self.filter = FilterLayer(hidden_size, dropout, complex_weight)
        self.ffn = FeedForward(hidden_size, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, last_only: bool = False):
        filtered = self.filter(x)
        return self.ffn(filtered[:, -1:] if last_only else filtered)


class FMLPRec(StackedBlocksModel):
    losses = ("bce",)

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        max_len: int = 50,
        num_layers: int = 2,
        hidden_dropout: float = 0.5,
        loss: str | None = None,
    ):
        super().__init__(n_items, hidden_size, max_len, hidden_dropout, loss)
        complex_weight = torch.randn(1, max_len // 2 + 1, hidden_size, 2) * 0.02
        self.blocks = nn.ModuleList(
            FilterBlock(hidden_size, hidden_dropout, complex_weight) for _ in range(num_layers)
        )
        self.apply(init_weights)

    def block_mask(self, input_ids: torch.Tensor) -> None:
        return None  # the filter sees every slot

    def loss(self, batch: Batch) -> torch.Tensor:
        h = self.encode(batch["inputs"])
        table = self.item_embeddings
        pos = torch.sigmoid((h * table[batch["targets"]]).sum(-1))
        neg = torch.sigmoid((h * table[batch["negatives"]]).sum(-1))
        return (-torch.log(pos + 1e-24) - torch.log(1 - neg + 1e-24)).mean()
