"""Layers shared by the Transformer-style recommenders (BSARec, SASRec), as in the reference code.

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
    Bernoulli variable per element; the distribution is the same. Other p use torch's dropout."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must lie in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p != 0.5:
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        random_bytes = torch.randint(0, 256, ((n + 7) // 8,), dtype=torch.uint8, device=x.device)
        bits = (random_bytes.unsqueeze(-1) >> _BIT_SHIFTS.to(x.device)) & 1
        keep_scaled = bits.view(-1)[:n].view(x.shape).to(x.dtype).mul_(2.0)
        return x * keep_scaled


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


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """mean_b [logsumexp_v(h_b · W_v) - h_b · W_target]; the probabilities computed in the forward pass are
    kept and turned into the gradient in place, so the (B, V) logits are materialised once, not four times."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ctx.dtypes = h.dtype, table.dtype
        with torch.autocast(h.device.type, enabled=False):  # the softmax always runs in fp32
            h, table = h.float(), table.float()
            probs = h @ table.T
            row_max = probs.amax(1, keepdim=True)
            probs.sub_(row_max).exp_()
            total = probs.sum(1, keepdim=True)
            loss = (total.log() + row_max).squeeze(1) - (h * table[targets]).sum(1)
            probs.div_(total)
        ctx.save_for_backward(h, table, targets, probs)
        return loss.mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        h, table, targets, probs = ctx.saved_tensors
        with torch.autocast(h.device.type, enabled=False):
            probs[torch.arange(len(targets), device=targets.device), targets] -= 1.0
            probs.mul_(grad.float() / len(targets))
            grad_h, grad_table = probs @ table, probs.T @ h
        return grad_h.to(ctx.dtypes[0]), grad_table.to(ctx.dtypes[1]), None


def softmax_cross_entropy(h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """F.cross_entropy(h @ table.T, targets), fused (same value and gradients up to float rounding)."""
    return _SoftmaxCrossEntropy.apply(h, table, targets)


def sampled_softmax_cross_entropy(
    h: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    sampled_items: torch.Tensor,
    sampled_log_expected: torch.Tensor,
) -> torch.Tensor:
    """Sampled softmax with the logQ correction: S items drawn with replacement from a proposal q, shared by
    the batch, stand in for the full catalogue. Each sampled logit is corrected by log(S · q(item)), so that
    sum_s exp(logit_s - log(S q_s)) is an unbiased estimate of sum_v exp(h · W_v); a sample equal to the row's
    target (an accidental hit) is dropped, since the target's own term enters uncorrected. As S grows, the loss
    and its gradient approach the full softmax cross-entropy's."""
    target_logit = (h * table[targets]).sum(-1)
    sampled = h @ table[sampled_items].T - sampled_log_expected
    sampled = sampled.masked_fill(sampled_items[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([target_logit[:, None], sampled], 1)
    return (torch.logsumexp(logits.float(), 1) - target_logit.float()).mean()


def next_item_loss(
    h: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    sampled_items: torch.Tensor | None = None,
    sampled_log_expected: torch.Tensor | None = None,
    **_,
) -> torch.Tensor:
    """The cross-entropy of the next item: full softmax, or sampled softmax when the batch brings samples."""
    if sampled_items is None:
        return softmax_cross_entropy(h, table, targets)
    return sampled_softmax_cross_entropy(h, table, targets, sampled_items, sampled_log_expected)


def target_negative_bce(
    h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """BCE-with-logits: label 1 for h · W_target, label 0 for h · W_negative, each averaged over the batch."""
    pos = (h * table[targets]).sum(-1)
    neg = (h * table[negatives]).sum(-1)
    return F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + F.binary_cross_entropy_with_logits(
        neg, torch.zeros_like(neg)
    )


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float, sim: str = "dot") -> torch.Tensor:
    """InfoNCE of DuoRec/FEARec: for each of the 2B rows of z = [a; b], the partner row (i ± B) is the positive
    and the other 2B - 2 rows are negatives (the row itself is left out); averaged over the 2B rows."""
    z = torch.cat([a, b])
    if sim == "cos":
        z = F.normalize(z, dim=-1)
    elif sim != "dot":
        raise ValueError(f"sim must be 'dot' or 'cos', got {sim!r}")
    logits = (z @ z.T) / tau
    logits.fill_diagonal_(float("-inf"))
    n = len(a)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partner)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Reference init: Linear and Embedding weights N(0, std) (padding row included), biases 0, LN (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
        module.bias.data.zero_()
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()


class SequentialRecommenderModel(nn.Module):
    """Embedding, a stack of blocks, and tied-embedding scoring; subclasses supply the blocks.

    What the training loop must hand to `loss` besides inputs and targets is declared by flags:
    `needs_negatives` (one sampled negative per sample), `needs_users` (dataset rows) and
    `needs_positives` (a same-target sample's input, for the contrastive models).
    """

    needs_negatives = False
    needs_users = False
    needs_positives = False

    def __init__(self, n_items: int, hidden_size: int, max_len: int, hidden_dropout: float):
        super().__init__()
        self.n_items = n_items
        self.max_len = max_len
        self.embedding = ItemPositionEmbedding(n_items, hidden_size, max_len, hidden_dropout)
        self.blocks = nn.ModuleList()

    def select_loss(self, name: str) -> None:
        """Full-softmax cross-entropy ("ce") or BCE against one sampled negative ("bce")."""
        options = {"ce": self.cross_entropy_loss, "bce": self.bce_loss}
        if name not in options:
            raise ValueError(f"loss must be one of {', '.join(options)}, got {name!r}")
        self.loss = options[name]
        self.needs_negatives = name == "bce"

    @property
    def item_embeddings(self) -> torch.Tensor:
        """The output table: tied to the input item embeddings, row 0 (padding) included."""
        return self.embedding.item.weight

    def attention_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        return causal_padding_mask(input_ids)

    def forward(self, input_ids: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Hidden states (B, N, d), or (B, d) for the last position only."""
        mask = self.attention_mask(input_ids)
        x = self.embedding(input_ids)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1)
        return x[:, -1] if last_only else x

    def encode(self, input_ids: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """User representation: the output at the last position, (B, d)."""
        return self.forward(input_ids, last_only=True)

    def hidden_states(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """[embedding output, block 1 output, ...] for analysis."""
        mask = self.attention_mask(input_ids)
        states = [self.embedding(input_ids)]
        for block in self.blocks:
            states.append(block(states[-1], mask))
        return states

    def attention_maps(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """Each block's self-attention probabilities (B, heads, N, N), for analysis; [] without attention."""
        if not all(isinstance(getattr(b, "attention", None), MultiHeadSelfAttention) for b in self.blocks):
            return []
        mask = self.attention_mask(input_ids)
        x, maps = self.embedding(input_ids), []
        for block in self.blocks:
            maps.append(block.attention.attention_map(x, mask))
            x = block(x, mask)
        return maps

    def cross_entropy_loss(self, inputs: torch.Tensor, targets: torch.Tensor, **sampled) -> torch.Tensor:
        """Full-softmax CE of the last position's output against every item (row 0 included, as the
        reference), or sampled softmax when the batch brings sampled items."""
        return next_item_loss(self.encode(inputs), self.item_embeddings, targets, **sampled)

    def bce_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, **_
    ) -> torch.Tensor:
        """BCE at the last position: label 1 for the target, 0 for one sampled negative (SASRec as the paper ran it)."""
        return target_negative_bce(self.encode(inputs), self.item_embeddings, targets, negatives)
