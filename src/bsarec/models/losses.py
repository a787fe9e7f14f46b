"""The training objectives the models share: full-softmax cross-entropy (fused), sampled softmax with the logQ
correction, BCE against one sampled negative, and the InfoNCE of the contrastive models. Each takes the
encoder's output h (B, d) and the output item table (V, d)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bsarec.models.batch import Batch


def _bf16_products(device: torch.device) -> bool:
    """Whether the step runs under bf16 autocast: the loss's matrix products then run in bf16 as every other
    product of the step does (4.5x the fp32 throughput on a CPU with bf16 instructions,
    benchmarks/results/matmul_peak.md); the softmax itself always runs in fp32."""
    return torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type) == torch.bfloat16


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """mean_b [logsumexp_v(h_b · W_v) - h_b · W_target]; the probabilities computed in the forward pass are
    kept and turned into the gradient in place, so the (B, V) logits are materialised once, not four times.
    The logits, softmax and probabilities are fp32; under bf16 autocast the three products (logits, and the
    two gradients) take bf16 inputs, as autocast's own linear layers do."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ctx.dtypes = h.dtype, table.dtype
        product_dtype = torch.bfloat16 if _bf16_products(h.device) else torch.float32
        with torch.autocast(h.device.type, enabled=False):
            h, table = h.to(product_dtype), table.to(product_dtype)
            probs = (h @ table.T).float()
            if product_dtype == torch.float32:
                target_logit = (h * table[targets]).sum(1)
            else:  # the logit the softmax saw (a bf16 elementwise sum would round more)
                target_logit = probs.gather(1, targets[:, None]).squeeze(1)
            row_max = probs.amax(1, keepdim=True)
            probs.sub_(row_max).exp_()
            total = probs.sum(1, keepdim=True)
            loss = (total.log() + row_max).squeeze(1) - target_logit
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
            weights = probs.to(h.dtype)
            grad_h, grad_table = weights @ table, weights.T @ h
        return grad_h.to(ctx.dtypes[0]), grad_table.to(ctx.dtypes[1]), None


def softmax_cross_entropy(h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """F.cross_entropy(h @ table.T, targets), fused (same value and gradients up to float rounding). Under
    torch.func transforms (packed runs, training/packed.py) the plain form runs: a fused autograd.Function
    cannot be vmapped."""
    if torch._C._are_functorch_transforms_active():
        product_dtype = torch.bfloat16 if _bf16_products(h.device) else torch.float32
        with torch.autocast(h.device.type, enabled=False):
            logits = (h.to(product_dtype) @ table.to(product_dtype).T).float()
            return F.cross_entropy(logits, targets)
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


def next_item_loss(h: torch.Tensor, table: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The cross-entropy of the batch's targets: full softmax, or sampled softmax when the batch brings
    samples."""
    if "sampled_items" not in batch:
        return softmax_cross_entropy(h, table, batch["targets"])
    return sampled_softmax_cross_entropy(
        h, table, batch["targets"], batch["sampled_items"], batch["sampled_log_expected"]
    )


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
