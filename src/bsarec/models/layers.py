"""Layers shared by the models, as in the reference code.

Post-LN blocks, LayerNorm eps 1e-12, exact (erf) GELU, dropout on hidden states and attention
probabilities, additive -10000 attention mask, N(0, 0.02) initialisation.

`last_only=True` in a block computes only the last position's output. In the final block nothing else is
needed for the prediction: other positions reach the last one only through K, V (and BSARec's filter row),
which are computed from the block's full input. This is exact, not an approximation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MASK_VALUE = -10000.0  # additive, as the reference; -inf would give NaN on all-padding query rows


_BIT_SHIFTS = torch.arange(8, dtype=torch.uint8)


class Dropout(nn.Module):
    """Inverted dropout. For p = 0.5 (every dropout of the paper's models) the Bernoulli(0.5) mask is cut
    from random bytes, 8 mask bits per byte, which is an order of magnitude cheaper on CPU than drawing one
    Bernoulli variable per element; the distribution is the same. Other p use torch's dropout, and so does
    every p after `use_torch_dropout(model)` (the speed benchmark's plain baseline). After
    `per_run_dropout(model)` p is a tensor (the buffer `p_tensor`), so that packed runs, whose buffers are
    stacked, each drop with their own p (training/packed.py)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
        self.p = p
        self.byte_masks = True
        self.p_tensor: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.p_tensor is not None:  # this run's own p, possibly another than its pack's other runs
            return x * (torch.rand_like(x) >= self.p_tensor) / (1.0 - self.p_tensor)
        if self.p == 0.0:
            return x
        if self.p != 0.5 or not self.byte_masks:
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        random_bytes = torch.randint(0, 256, ((n + 7) // 8,), dtype=torch.uint8, device=x.device)
        bits = (random_bytes.unsqueeze(-1) >> _BIT_SHIFTS.to(x.device)) & 1
        keep_scaled = bits.view(-1)[:n].view(x.shape).to(x.dtype).mul_(2.0)
        return x * keep_scaled


def per_run_dropout(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Hold every Dropout's p of `model` as a (non-persistent) buffer, or again as a number (`enabled=False`)."""
    for module in model.modules():
        if isinstance(module, Dropout):
            del module.p_tensor  # a plain attribute, or the buffer
            if enabled:
                module.register_buffer("p_tensor", torch.tensor(module.p), persistent=False)
            else:
                module.p_tensor = None
    return model


def use_torch_dropout(model: nn.Module) -> nn.Module:
    """Make every Dropout of `model` draw one Bernoulli variable per element, as torch's dropout does."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.byte_masks = False
    return model


def bidirectional_padding_mask(input_ids: torch.Tensor) -> torch.Tensor:
    """Additive mask (B, 1, 1, N): every query sees key j iff input_j != 0 (BERT4Rec)."""
    return torch.zeros(input_ids.shape, device=input_ids.device).masked_fill(input_ids == 0, MASK_VALUE)[
        :, None, None, :
    ]


def causal_padding_mask(input_ids: torch.Tensor) -> torch.Tensor:
    """Additive mask (B, 1, N, N): query i sees key j iff j <= i and input_j != 0."""
    n = input_ids.size(1)
    causal = torch.ones(n, n, dtype=torch.bool, device=input_ids.device).tril()
    visible = causal[None, None] & (input_ids != 0)[:, None, None, :]
    return torch.zeros(visible.shape, device=input_ids.device).masked_fill(~visible, MASK_VALUE)


class ItemPositionEmbedding(nn.Module):
    """E = Dropout(LayerNorm(item_emb + position_emb)); positions 0..N-1 from the left edge."""

    def __init__(self, n_items: int, hidden_size: int, max_len: int, dropout: float):
        super().__init__()
        self.item = nn.Embedding(n_items, hidden_size, padding_idx=0)
        self.position = nn.Embedding(max_len, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.dropout = Dropout(dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        return self.dropout(self.norm(self.item(input_ids) + self.position(positions)))


class ItemEmbedding(nn.Module):
    """E = Dropout(LayerNorm(item_emb)), without positions (TV-Rec's filter is position-specific itself)."""

    def __init__(self, n_items: int, hidden_size: int, dropout: float):
        super().__init__()
        self.item = nn.Embedding(n_items, hidden_size, padding_idx=0)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.dropout = Dropout(dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(self.item(input_ids)))


class MultiHeadSelfAttention(nn.Module):
    """LayerNorm(X + Dropout(W_o · softmax(QK^T/sqrt(e) + M) V)), with dropout on the probabilities."""

    def __init__(self, hidden_size: int, num_heads: int, attn_dropout: float, hidden_dropout: float):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.attn_dropout = Dropout(attn_dropout)
        self.out_dropout = Dropout(hidden_dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_size).transpose(1, 2)

    def attention_map(self, x: torch.Tensor, mask: torch.Tensor, queries: torch.Tensor | None = None):
        """softmax(QK^T/sqrt(e) + M): (B, heads, queries, N), before dropout."""
        q = self._heads(self.query(x if queries is None else queries))
        scores = q @ self._heads(self.key(x)).transpose(-1, -2) / math.sqrt(self.head_size) + mask
        return torch.softmax(scores, dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        residual = x[:, -1:] if last_only else x
        if last_only:
            mask = mask[:, :, -1:]
        probs = self.attn_dropout(self.attention_map(x, mask, residual))
        context = (probs @ self._heads(self.value(x))).transpose(1, 2).reshape(residual.shape)
        return self.norm(residual + self.out_dropout(self.out(context)))


class FeedForward(nn.Module):
    """LayerNorm(X + Dropout(W_2 GELU(W_1 X)))."""

    def __init__(self, hidden_size: int, dropout: float, inner_size: int | None = None):
        super().__init__()
        self.dense_in = nn.Linear(hidden_size, inner_size or 4 * hidden_size)
        self.dense_out = nn.Linear(inner_size or 4 * hidden_size, hidden_size)
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.dense_out(F.gelu(self.dense_in(x)))))


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Reference init: Linear and Embedding weights N(0, std) (padding row included), biases 0, LN (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
        module.bias.data.zero_()
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()
