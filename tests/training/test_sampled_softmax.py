"""Sampled softmax with the logQ correction: it estimates the full softmax, and trains."""

import math

import pytest
import torch

from bsarec import SequentialRecommender
from bsarec.api import build_run_model
from bsarec.config import RunConfig
from bsarec.data.split import leave_one_out
from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import ConfigError
from bsarec.models import build_model
from bsarec.models.losses import sampled_softmax_cross_entropy, softmax_cross_entropy
from bsarec.training.sampling import BatchMaker, SoftmaxSampler


def loss_and_grads(loss_fn, h, table):
    h, table = h.clone().requires_grad_(), table.clone().requires_grad_()
    loss = loss_fn(h, table)
    grad_h, grad_table = torch.autograd.grad(loss, (h, table))
    return loss.item(), torch.cat([grad_h.flatten(), grad_table.flatten()])


@pytest.mark.parametrize("kind", ["uniform", "popularity"])
def test_loss_and_gradient_approach_the_full_softmax_as_negatives_grow(kind):
    torch.manual_seed(0)
    n_rows, batch = 400, 16
    h, table = torch.randn(batch, 8), torch.randn(n_rows, 8)
    targets = torch.randint(n_rows, (batch,))
    popular = torch.randint(n_rows, (5000,)) % 40  # a skewed target history for the popularity proposal
    full_loss, full_grad = loss_and_grads(lambda h, t: softmax_cross_entropy(h, t, targets), h, table)
    generator = torch.Generator().manual_seed(1)
    loss_errors, grad_errors = [], []
    for count in (8, 64, 512, 32768):
        sampler = SoftmaxSampler(n_rows, count, kind, popular)
        losses, grads = [], []
        for _ in range(20):
            items, log_expected = sampler(generator)
            loss, grad = loss_and_grads(
                lambda h, t, i=items, q=log_expected: sampled_softmax_cross_entropy(h, t, targets, i, q),
                h,
                table,
            )
            losses.append(loss)
            grads.append(grad)
        loss_errors.append(abs(sum(losses) / len(losses) - full_loss) / full_loss)
        grad_errors.append((torch.stack(grads).mean(0) - full_grad).norm().item() / full_grad.norm().item())
    assert loss_errors[-1] < 0.01 and grad_errors[-1] < 0.05, (loss_errors, grad_errors)
    assert loss_errors[-1] < loss_errors[0] / 5 and grad_errors[-1] < grad_errors[0] / 3, (
        loss_errors,
        grad_errors,
    )


def test_without_the_correction_the_estimate_would_be_far_off():
    """The check above can fail: without logQ, 40 negatives of 400 items stand for a tenth of the sum."""
    torch.manual_seed(0)
    h, table, targets = torch.randn(16, 8), torch.randn(400, 8), torch.randint(400, (16,))
    full = softmax_cross_entropy(h, table, targets).item()
    sampler, generator = SoftmaxSampler(400, 40, "uniform"), torch.Generator().manual_seed(1)
    corrected, uncorrected = [], []
    for _ in range(50):
        items, log_expected = sampler(generator)
        corrected.append(sampled_softmax_cross_entropy(h, table, targets, items, log_expected).item())
        uncorrected.append(sampled_softmax_cross_entropy(h, table, targets, items, 0 * log_expected).item())
    corrected_error = abs(sum(corrected) / 50 - full)
    uncorrected_error = abs(sum(uncorrected) / 50 - full)
    assert uncorrected_error > 1.0 and uncorrected_error > 3 * corrected_error, (
        corrected_error,
        uncorrected_error,
    )


def test_an_accidental_hit_does_not_count_as_a_negative():
    h = torch.tensor([[1.0, 0.0]])
    table = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([1])
    with_hit = sampled_softmax_cross_entropy(h, table, targets, torch.tensor([1, 2]), torch.zeros(2))
    without = sampled_softmax_cross_entropy(h, table, targets, torch.tensor([2]), torch.zeros(1))
    assert with_hit.item() == pytest.approx(without.item())
    assert without.item() == pytest.approx(math.log(math.exp(2.0) + 1.0) - 2.0)


def test_sampler_proposals_and_their_log_expected_counts():
    generator = torch.Generator().manual_seed(0)
    items, log_expected = SoftmaxSampler(10, 4, "uniform")(generator)
    assert items.shape == (4,) and torch.allclose(log_expected, torch.full((4,), math.log(4 / 10)))
    sampler = SoftmaxSampler(5, 1000, "popularity", torch.tensor([1, 1, 1, 2]))  # counts + 1: 1, 4, 2, 1, 1
    assert torch.allclose(sampler.probs, torch.tensor([1, 4, 2, 1, 1], dtype=torch.float64) / 9)
    items, log_expected = sampler(generator)
    assert torch.allclose(log_expected, (1000 * sampler.probs[items]).log().float())
    assert (items == 1).float().mean() > 0.35  # the most frequent target is drawn most
    with pytest.raises(ValueError, match="sampler"):
        SoftmaxSampler(5, 3, "zipf")


def test_a_batch_shares_its_sampled_items_and_each_process_gets_its_rows():
    split = leave_one_out(generate_synthetic(n_users=60, n_clusters=3, items_per_cluster=10), 10)
    model = build_model(
        "sasrec", split.n_items, RunConfig(model="sasrec", hidden_size=16, max_len=10).model_settings()
    )
    make_batch = BatchMaker(model, split, "cpu", SoftmaxSampler(split.n_items, 7, "uniform"))
    index = torch.arange(10)
    whole = make_batch(index, torch.Generator().manual_seed(3))
    part = make_batch(index, torch.Generator().manual_seed(3), rows=(4, 10))
    assert whole["sampled_items"].shape == (7,) and torch.equal(whole["sampled_items"], part["sampled_items"])
    assert torch.equal(part["inputs"], whole["inputs"][4:]) and torch.equal(
        part["negatives"], whole["negatives"][4:]
    )


def test_training_with_sampled_softmax_learns():
    data = generate_synthetic(n_users=200, n_clusters=4, items_per_cluster=10, max_length=20, seed=3)
    settings = dict(
        hidden_size=16, max_len=12, epochs=10, lr=0.005, patience=100, threads=1, softmax_negatives=8
    )
    rec = SequentialRecommender("bsarec", **settings).fit(data, progress=False)
    losses = [r["loss"] for r in rec.result.history]
    assert losses[-1] < losses[0] - 0.3, losses
    untrained = SequentialRecommender("bsarec", **settings)  # the same initial weights, never trained
    torch.manual_seed(untrained.config.seed)
    untrained.dataset, untrained.model = data, build_run_model(untrained.config, data)
    assert rec.metrics["valid"]["NDCG@20"] > untrained.evaluate("valid")["NDCG@20"] + 0.05


def test_sampled_softmax_replaces_only_the_ce_loss():
    assert (
        RunConfig(model="duorec", softmax_negatives=100, softmax_sampler="popularity").softmax_negatives
        == 100
    )
    with pytest.raises(ConfigError, match="softmax_negatives"):
        RunConfig(model="sasrec", loss="bce", softmax_negatives=100)
    with pytest.raises(ConfigError, match="softmax_negatives"):
        RunConfig(model="bsarec", softmax_negatives=-1)
    with pytest.raises(ConfigError, match="softmax_sampler"):
        RunConfig(model="bsarec", softmax_sampler="zipf")
