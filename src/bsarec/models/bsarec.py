"""BSARec (Shin et al., AAAI 2024): self-attention plus an attentive inductive bias in the frequency domain.

Each block mixes two branches of the same input X (B, N, d):
  frequency:  X_low = IDFT(keep the first c//2+1 bins of DFT(X)), X_high = X - X_low            (Eq. 6)
              F = LayerNorm(X + Dropout(X_low + beta ⊙ X_high)), beta = sqrt_beta²               (Eq. 7)
  attention:  A = LayerNorm(X + Dropout(MultiHeadAttention(X)))                                    (Eq. 3)
  mix:        H = alpha · F + (1 - alpha) · A, then the position-wise FFN sub-layer              (Eq. 8)
The low-pass filter on a fixed length N is a fixed real N x N matrix, so it runs as one matrix product
(equal to the orthonormal rfft/irfft form; tests check both against an explicit DFT).
"""

from __future__ import annotations

import torch
from torch import nn

from bsarec.models.base import StackedBlocksModel
from bsarec.models.layers import Dropout, FeedForward, MultiHeadSelfAttention, init_weights


def low_pass_fft(x: torch.Tensor, c: int) -> torch.Tensor:
    """Keep the first c//2 + 1 rfft bins along positions (dim 1), orthonormal, as the reference code."""
    n = x.size(1)
    spectrum = torch.fft.rfft(x, dim=1, norm="ortho")
    spectrum[:, c // 2 + 1 :] = 0
    return torch.fft.irfft(spectrum, n=n, dim=1, norm="ortho")


def low_pass_matrix(n: int, c: int) -> torch.Tensor:
    """The real N x N matrix L with low_pass_fft(x) = L @ x along positions."""
    identity = torch.eye(n, dtype=torch.float64).unsqueeze(-1)  # column j is the unit impulse at j
    return low_pass_fft(identity, c).squeeze(-1).T.to(torch.float32).contiguous()


class FrequencyLayer(nn.Module):
    """The beyond-self-attention inductive bias: low-pass part plus beta-rescaled high-pass part."""

    def __init__(self, hidden_size: int, max_len: int, c: int, dropout: float, sqrt_beta: torch.Tensor):
        super().__init__()
        self.c = c
        self.register_buffer("low_pass", low_pass_matrix(max_len, c), persistent=False)
        self.sqrt_beta = nn.Parameter(sqrt_beta.clone().view(1, 1, hidden_size))
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        rows = self.low_pass[-1:] if last_only else self.low_pass
        residual = x[:, -1:] if last_only else x
        x_low = rows @ x  # Eq. 6, as a matrix product over positions
        x_high = residual - x_low
        filtered = x_low + self.sqrt_beta**2 * x_high  # Eq. 7
        return self.norm(residual + self.dropout(filtered))


class BSARecBlock(nn.Module):
    def __init__(self, hidden_size, max_len, num_heads, alpha, c, hidden_dropout, attn_dropout, sqrt_beta):
        super().__init__()
        # alpha and 1 - alpha (computed in double, as Python floats would be) as a buffer, so that packed runs
        # (training/packed.py) may each have their own
        self.register_buffer("mix", torch.tensor([alpha, 1 - alpha]), persistent=False)
        self.frequency = FrequencyLayer(hidden_size, max_len, c, hidden_dropout, sqrt_beta)
        self.attention = MultiHeadSelfAttention(hidden_size, num_heads, attn_dropout, hidden_dropout)
        self.ffn = FeedForward(hidden_size, hidden_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        dsp = self.frequency(x, last_only)
        gsp = self.attention(x, mask, last_only)
        return self.ffn(self.mix[0] * dsp + self.mix[1] * gsp)  # Eq. 8: alpha · F + (1 - alpha) · A


class BSARec(StackedBlocksModel):
    losses = ("ce", "bce")

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        max_len: int = 50,
        num_layers: int = 2,
        num_heads: int = 2,
        alpha: float = 0.9,
        c: int = 3,
        hidden_dropout: float = 0.5,
        attn_dropout: float = 0.5,
        loss: str | None = None,
    ):
        super().__init__(n_items, hidden_size, max_len, hidden_dropout, loss)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        if c < 1:
            raise ValueError(f"c must be >= 1, got {c}")
        # The reference deep-copies one block, so every layer starts from the same standard-normal sqrt_beta.
        sqrt_beta = torch.randn(hidden_size)
        self.blocks = nn.ModuleList(
            BSARecBlock(hidden_size, max_len, num_heads, alpha, c, hidden_dropout, attn_dropout, sqrt_beta)
            for _ in range(num_layers)
        )
        self.apply(init_weights)
