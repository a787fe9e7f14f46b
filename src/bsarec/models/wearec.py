"""WEARec (Xu et al., AAAI 2026) as its reference code builds it (docs/baselines.md).

Built on BSARec's code without attention: each block blends an input-adaptive Fourier filter (global) with a
one-level Haar wavelet whose detail coefficients get learned scales (local), then the FFN. Per layer, with
X (B, N, d) split into h heads of e = d/h channels and F = N//2 + 1 rfft bins:
  Fourier  Z = rfft(X_heads) along positions (orthonormal);  [s, b] = MLP(mean_t X)  (B, h, F, 2)
           Y_f = irfft(Z · base_filter(1 + s) + (base_bias + b))    scale and bias per (head, bin)
  wavelet  a = (x_2i + x_2i+1)/2,  δ = w ⊙ (x_2i - x_2i+1)/2;  outputs a + δ and a - δ at 2i and 2i+1
  mix      Y = (1 - alpha) · Y_wav + alpha · Y_f,  H = LayerNorm(X + Dropout(Y)), then the FFN
No attention and no padding mask: padding slots take part in the FFT, the context mean and the wavelet pairs.
The bias is real, so it adds to the real part of every bin. With odd N the last slot has no pair and its wavelet
output is 0. The layer is non-causal, but only the last position is read. Loss: full-softmax cross-entropy.
"""

from __future__ import annotations

import torch
from torch import nn

from bsarec.models.base import StackedBlocksModel
from bsarec.models.layers import Dropout, FeedForward, init_weights


def haar_wavelet(x: torch.Tensor, detail_weight: torch.Tensor) -> torch.Tensor:
    """One-level Haar decomposition of position pairs, the detail rescaled, and the reconstruction.
    x: (B, h, N, e); detail_weight: (1, h, N//2, e)."""
    b, h, n, e = x.shape
    even, odd = x[:, :, 0 : n - n % 2 : 2], x[:, :, 1 : n - n % 2 : 2]
    approx = 0.5 * (even + odd)
    detail = 0.5 * (even - odd) * detail_weight
    out = torch.stack([approx + detail, approx - detail], dim=3).reshape(b, h, n - n % 2, e)
    if n % 2:
        out = torch.cat([out, x.new_zeros(b, h, 1, e)], dim=2)
    return out


class WaveletFourierLayer(nn.Module):
    def __init__(self, hidden_size, max_len, num_heads, alpha, dropout, detail_weight: torch.Tensor):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        self.num_heads, self.alpha = num_heads, alpha
        self.bins = max_len // 2 + 1
        self.detail_weight = nn.Parameter(detail_weight.clone())  # the reference's complex_weight (real)
        self.base_filter = nn.Parameter(torch.ones(num_heads, self.bins, 1))
        self.base_bias = nn.Parameter(torch.full((num_heads, self.bins, 1), -0.1))
        self.adaptive = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, num_heads * self.bins * 2)
        )
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        heads = x.view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)  # (B, h, N, e)
        spectrum = torch.fft.rfft(heads, dim=2, norm="ortho")
        modulation = self.adaptive(x.mean(1)).view(b, self.num_heads, self.bins, 2)  # from the context mean
        scale = self.base_filter * (1 + modulation[..., 0:1])
        bias = self.base_bias + modulation[..., 1:2]
        global_part = torch.fft.irfft(spectrum * scale + bias, n=n, dim=2, norm="ortho")
        local_part = haar_wavelet(heads, self.detail_weight)
        mixed = (1 - self.alpha) * local_part + self.alpha * global_part
        return self.norm(x + self.dropout(mixed.transpose(1, 2).reshape(b, n, d)))


class WEARecBlock(nn.Module):
    def __init__(self, hidden_size, max_len, num_heads, alpha, dropout, detail_weight: torch.Tensor):
        super().__init__()
        self.layer = WaveletFourierLayer(hidden_size, max_len, num_heads, alpha, dropout, detail_weight)
        self.ffn = FeedForward(hidden_size, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, last_only: bool = False):
        mixed = self.layer(x)
        return self.ffn(mixed[:, -1:] if last_only else mixed)


class WEARec(StackedBlocksModel):
    losses = ("ce",)

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        max_len: int = 50,
        num_layers: int = 2,
        num_heads: int = 2,
        alpha: float = 0.3,
        hidden_dropout: float = 0.5,
        loss: str | None = None,
    ):
        super().__init__(n_items, hidden_size, max_len, hidden_dropout, loss)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        torch.randn(1, max_len // 2 + 1, hidden_size, 2)  # the reference draws a first weight and replaces it
        # drawn once: every layer starts from the same weights (the reference deep-copies one block)
        detail_weight = torch.randn(1, num_heads, max_len // 2, hidden_size // num_heads) * 0.02
        self.blocks = nn.ModuleList(
            WEARecBlock(hidden_size, max_len, num_heads, alpha, hidden_dropout, detail_weight)
            for _ in range(num_layers)
        )
        self.apply(init_weights)

    def block_mask(self, input_ids: torch.Tensor) -> None:
        return None  # no mask: every slot, padding included, enters the filters
