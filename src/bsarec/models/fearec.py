"""FEARec (Du et al., SIGIR 2023) as the BSARec paper ran it (docs/baselines.md).

Each block replaces self-attention by a hybrid of two attentions on one band of frequencies, then the FFN.
Layer l keeps the rfft bins [left_l, right_l) (with the defaults, layer 0 keeps 10-25, layer 1 keeps 0-15).
  Q, K, V = X W_q, X W_k, X W_v
  R(τ)    = mean over channels of irfft(band(rfft(Q) ⊙ conj(rfft(K))))[τ]       auto-correlation (Eq. 8)
  A_auto  = sum over the top-k delays τ of softmax(R(τ)) · roll(V, -τ)           time-delay aggregation (Eq. 9)
            (training: the delays of the batch-mean R; inference: each sample's own delays)
  A_time  = softmax(P Q (P K)^T / sqrt(e) + M) P V, P = the band's projection     frequency-ramped attention (Eq. 6)
  H       = LayerNorm(X + Dropout(W_o ((1 - r) A_auto + r A_time)))               r = spatial_ratio
Loss: CE(h, target) + lmd_sem · InfoNCE(h', h_sem) + w · mean |rfft(H') - rfft(H_sem)|, the views as in DuoRec;
the last term compares the two views' whole output sequences along the slot axis (orthonormal rfft).
The band projection and the circular shifts are fixed linear maps on the slot axis, so they run as N x N
matrix products (equal to the FFT forms; a test checks both) instead of the reference's per-bin loops.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bsarec.models.base import StackedBlocksModel
from bsarec.models.batch import Batch
from bsarec.models.layers import Dropout, FeedForward, init_weights
from bsarec.models.losses import info_nce, next_item_loss


def frequency_band(max_len: int, layer: int, num_layers: int, global_ratio: float) -> tuple[int, int]:
    """[left, right) rfft bins kept by a layer, as the reference computes them."""
    bins = max_len // 2 + 1
    if global_ratio > 1 / num_layers:  # "global": overlapping bands of width global_ratio
        width = global_ratio
        step = (bins * (1 - global_ratio)) // (num_layers - 1) if num_layers > 1 else 0.0
    else:  # "local": disjoint bands of width 1/num_layers
        width = 1 / num_layers
        step = width * bins
    return int(bins * (1 - width) - layer * step), int(bins - layer * step)


def real_dft(
    max_len: int, left: int, right: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real matrices of the rfft (cos, sin: F x N) and of the irfft restricted to the band (N x F each), so that
    the band-limited cross-correlation runs without complex numbers (and exports to ONNX)."""
    bins = max_len // 2 + 1
    f = torch.arange(bins, dtype=torch.float64)[:, None]
    t = torch.arange(max_len, dtype=torch.float64)[None, :]
    angle = 2 * torch.pi * f * t / max_len
    weight = torch.full((bins,), 2.0, dtype=torch.float64)  # each bin stands for itself and its mirror image
    weight[0] = 1.0
    if max_len % 2 == 0:
        weight[-1] = 1.0
    keep = torch.zeros(bins, dtype=torch.float64)
    keep[left:right] = 1.0
    inverse = (weight * keep)[:, None] / max_len
    return (
        torch.cos(angle).float(),
        torch.sin(angle).float(),
        (inverse * torch.cos(angle)).T.float().contiguous(),
        (inverse * torch.sin(angle)).T.float().contiguous(),
    )


def band_projection(max_len: int, left: int, right: int) -> torch.Tensor:
    """The real N x N matrix P with P @ x = irfft(rfft(x) restricted to bins [left, right)) along slots."""
    keep = torch.zeros(max_len // 2 + 1, 1, dtype=torch.float64)
    keep[left:right] = 1
    impulses = torch.eye(max_len, dtype=torch.float64)  # column j: the unit impulse at slot j
    return torch.fft.irfft(torch.fft.rfft(impulses, dim=0) * keep, n=max_len, dim=0).float()


class HybridAttention(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        max_len: int,
        num_heads: int,
        band: tuple[int, int],
        spatial_ratio: float,
        top_k: int,
        attn_dropout: float,
        hidden_dropout: float,
    ):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        self.num_heads, self.head_size = num_heads, hidden_size // num_heads
        self.band, self.spatial_ratio, self.top_k = band, spatial_ratio, top_k
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.attn_dropout = Dropout(attn_dropout)
        self.out_dropout = Dropout(hidden_dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.register_buffer("projection", band_projection(max_len, *band), persistent=False)
        slots = torch.arange(max_len)
        self.register_buffer("delay_of", (slots[None, :] - slots[:, None]) % max_len, persistent=False)
        for name, matrix in zip(
            ("dft_cos", "dft_sin", "idft_cos", "idft_sin"), real_dft(max_len, *band), strict=True
        ):
            self.register_buffer(name, matrix, persistent=False)

    def autocorrelation(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """R (B, N): channel-mean circular cross-correlation of Q and K on the layer's band, i.e.
        irfft(band(mean over channels of rfft(Q) · conj(rfft(K)))), in real arithmetic."""
        q_re, q_im = self.dft_cos @ q, -(self.dft_sin @ q)  # rfft along the slots: (B, F, d)
        k_re, k_im = self.dft_cos @ k, -(self.dft_sin @ k)
        cross_re = (q_re * k_re + q_im * k_im).mean(-1)  # Q · conj(K), averaged over channels: (B, F)
        cross_im = (q_im * k_re - q_re * k_im).mean(-1)
        return cross_re @ self.idft_cos.T - cross_im @ self.idft_sin.T  # irfft of the band only

    def delay_weights(self, corr: torch.Tensor, groups: int) -> torch.Tensor:
        """(B, N) weight of every delay: softmax over the top-k delays, 0 elsewhere."""
        if self.training:  # one set of delays per group (pass), from the group's mean correlation
            b, n = corr.shape
            shared = corr.view(groups, b // groups, n).mean(1).topk(self.top_k, dim=-1).indices
            delays = shared.repeat_interleave(b // groups, dim=0)
        else:
            delays = corr.topk(self.top_k, dim=-1).indices
        return torch.zeros_like(corr).scatter(1, delays, torch.softmax(corr.gather(1, delays), -1))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, groups: int = 1) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)
        weights = self.delay_weights(self.autocorrelation(q, k), groups)
        shift = weights[:, self.delay_of]  # shift[b, t, s] = weight of delay (s - t) mod N
        auto = shift @ v  # slot t reads sum over τ of w(τ) · V[(t + τ) mod N]
        qs, ks, vs = (self._heads(self.projection @ y) for y in (q, k, v))
        scores = qs @ ks.transpose(-1, -2) / math.sqrt(self.head_size) + mask
        spatial = (self.attn_dropout(torch.softmax(scores, -1)) @ vs).transpose(1, 2).reshape(x.shape)
        mixed = (1 - self.spatial_ratio) * auto + self.spatial_ratio * spatial
        return self.norm(x + self.out_dropout(self.dense(mixed)))


class FEARecBlock(nn.Module):
    def __init__(self, attention: HybridAttention, hidden_size: int, dropout: float):
        super().__init__()
        self.attention = attention
        self.ffn = FeedForward(hidden_size, dropout)

    def forward(self, x, mask, last_only: bool = False, groups: int = 1) -> torch.Tensor:
        h = self.attention(x, mask, groups)
        return self.ffn(h[:, -1:] if last_only else h)


class FEARec(StackedBlocksModel):
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
        global_ratio: float = 0.6,
        spatial_ratio: float = 0.1,
        topk_factor: int = 10,
        freq_loss_weight: float = 0.1,
        loss: str | None = None,
    ):
        super().__init__(n_items, hidden_size, max_len, hidden_dropout, loss)
        self.tau, self.lmd_sem, self.sim, self.freq_loss_weight = tau, lmd_sem, sim, freq_loss_weight
        top_k = min(max_len, int(topk_factor * math.log(max_len)))
        self.blocks = nn.ModuleList(
            FEARecBlock(
                HybridAttention(
                    hidden_size,
                    max_len,
                    num_heads,
                    frequency_band(max_len, layer, num_layers, global_ratio),
                    spatial_ratio,
                    top_k,
                    attn_dropout,
                    hidden_dropout,
                ),
                hidden_size,
                hidden_dropout,
            )
            for layer in range(num_layers)
        )
        self.apply(init_weights)

    def forward(self, input_ids: torch.Tensor, last_only: bool = False, groups: int = 1) -> torch.Tensor:
        mask = self.block_mask(input_ids)
        x = self.embedding(input_ids)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1, groups=groups)
        return x[:, -1] if last_only else x

    def loss(self, batch: Batch) -> torch.Tensor:
        # three passes (anchor, anchor again, same-target sample) as one batch; each keeps its own delays
        inputs = batch["inputs"]
        ids = torch.cat([inputs, inputs, batch["positives"]])
        mask, x = self.block_mask(ids), self.embedding(ids)
        *inner, final = self.blocks
        for block in inner:
            x = block(x, mask, groups=3)
        h, b = final.attention(x, mask, groups=3), len(inputs)
        # only the anchor's last position is scored, so its final FFN runs on that row alone (exact,
        # 7.5% fewer FLOPs); the two views keep every position for the frequency-domain loss
        anchor = final.ffn(h[:b, -1])
        augmented, semantic = final.ffn(h[b:]).split(b)
        ce = next_item_loss(anchor, self.item_embeddings, batch)
        nce = info_nce(augmented[:, -1], semantic[:, -1], self.tau, self.sim)
        spectra = torch.fft.rfft(augmented, dim=1, norm="ortho") - torch.fft.rfft(
            semantic, dim=1, norm="ortho"
        )
        return ce + self.lmd_sem * nce + self.freq_loss_weight * spectra.abs().mean()
