"""TV-Rec and WEARec: the forms their reference code computes, their quirks, and their training samples."""

import numpy as np
import pytest
import torch

from bsarec.data.split import prefix_samples
from bsarec.models import build_model
from bsarec.models.tvrec import (
    FILTER_ORDER,
    TVRec,
    filter_taps,
    orthogonality_penalty,
    spectral_filter_matrix,
    time_domain_matrix,
)
from bsarec.models.wearec import WaveletFourierLayer, WEARec, haar_wavelet


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- TV-Rec ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_len", [50, 8, 60])
def test_tvrec_spectral_form_equals_its_time_domain_form(max_len):
    torch.manual_seed(0)
    coefficients = torch.randn(max_len + FILTER_ORDER - 1, 4, dtype=torch.float64)
    basis = torch.randn(4, FILTER_ORDER + 1, 2, dtype=torch.float64)
    spectral = spectral_filter_matrix(coefficients, basis, max_len)
    direct = time_domain_matrix(filter_taps(coefficients, basis, max_len))
    assert torch.allclose(spectral, direct, atol=1e-9)


def test_tvrec_filter_is_causal_but_for_the_wrap_of_position_zero():
    torch.manual_seed(0)
    taps = torch.randn(8, FILTER_ORDER + 1)
    matrix = time_domain_matrix(taps)
    above = torch.triu(torch.ones(8, 8, dtype=torch.bool), diagonal=1)
    above[0, 7] = False
    assert (matrix[above] == 0).all()
    assert matrix[0, 7] == taps[0, FILTER_ORDER]  # position 0 sees the newest item
    assert matrix[5, 2] == taps[5, 3] and matrix[5, 5] == taps[5, 0]


def test_tvrec_has_the_reference_parameter_count_on_lastfm():
    assert (
        parameter_count(TVRec(n_items=3647, num_basis=8)) == 303_440
    )  # the reference model on LastFM, M = 8


def test_tvrec_ignores_padding_and_later_slots_except_the_wrap():
    torch.manual_seed(0)
    model = build_model("tvrec", 30, {"hidden_size": 8, "max_len": 6, "num_basis": 3}).eval()
    ids = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    before = model(ids)
    with torch.no_grad():
        model.embedding.item.weight[0] = torch.randn(8) * 5
    assert torch.allclose(model(ids), before, atol=1e-5)  # padding rows are zeroed before every block
    changed = ids.clone()
    changed[:, 5] = 9
    assert torch.allclose(model(changed)[:, 1:5], before[:, 1:5], atol=1e-6)
    assert not torch.allclose(model(changed)[:, 0], before[:, 0], atol=1e-6)


def test_tvrec_loss_adds_the_basis_orthogonality_penalty():
    torch.manual_seed(0)
    model = build_model("tvrec", 30, {"hidden_size": 8, "max_len": 6, "basis_reg_weight": 0.5}).eval()
    inputs, targets = torch.randint(1, 30, (4, 6)), torch.randint(1, 30, (4,))
    plain = torch.nn.functional.cross_entropy(model.encode(inputs) @ model.item_embeddings.T, targets)
    penalty = sum(
        orthogonality_penalty(b.filter.basis[..., 0]) + orthogonality_penalty(b.filter.basis[..., 1])
        for b in model.blocks
    )
    assert torch.allclose(model.loss({"inputs": inputs, "targets": targets}), plain + 0.5 * penalty)
    assert orthogonality_penalty(torch.eye(3, 5) * 4) == 0  # orthogonal rows of any length cost nothing
    assert torch.isclose(orthogonality_penalty(torch.ones(2, 3)), torch.tensor(2.0))


def test_tvrec_layers_start_equal():
    model = TVRec(n_items=20, hidden_size=8, max_len=6)
    first, second = (b.filter for b in model.blocks)
    assert torch.equal(first.basis, second.basis) and torch.equal(first.coefficients, second.coefficients)


def test_nonempty_samples_drop_the_empty_input_as_tvrec_does():
    x, y = prefix_samples(np.array([5, 6, 7]), 4, train_samples="nonempty")
    assert x.tolist() == [[0, 0, 0, 5], [0, 0, 5, 6]] and y.tolist() == [6, 7]
    x, y = prefix_samples(np.array([1, 2, 3, 4, 5, 6]), 4, train_samples="nonempty")
    assert x.tolist() == [[0, 0, 0, 2], [0, 0, 2, 3], [0, 2, 3, 4], [2, 3, 4, 5]] and y.tolist() == [
        3,
        4,
        5,
        6,
    ]
    x, y = prefix_samples(np.array([1, 2, 3, 4, 5, 6]), 4)  # the paper's: the same targets, one empty input
    assert x[0].tolist() == [0, 0, 0, 0] and y.tolist() == [3, 4, 5, 6]
    assert prefix_samples(np.array([7]), 4, train_samples="nonempty")[1].tolist() == []
    x, y = prefix_samples(np.array([5, 6, 7]), 4, "cyclic", train_samples="nonempty")
    assert x.tolist() == [[5, 5, 5, 5], [5, 6, 5, 6]] and y.tolist() == [6, 7]
    for padding in ("zeros", "cyclic", "reflect", "symmetric"):
        x, y = prefix_samples(np.array([5, 6, 7, 8, 9]), 3, padding, train_samples="nonempty")
        assert all(t not in row for row, t in zip(x.tolist(), y.tolist(), strict=True))


# -- WEARec ----------------------------------------------------------------------------------------------------


def test_haar_branch_on_hand_made_sequences():
    x = torch.tensor([1.0, 3.0, 5.0, 9.0]).view(1, 1, 4, 1)
    means = haar_wavelet(x, torch.zeros(1, 1, 2, 1))  # no detail: each pair becomes its mean
    assert means.flatten().tolist() == [2.0, 2.0, 7.0, 7.0]
    assert haar_wavelet(x, torch.ones(1, 1, 2, 1)).flatten().tolist() == [1.0, 3.0, 5.0, 9.0]  # identity
    scaled = haar_wavelet(x, torch.tensor([2.0, -1.0]).view(1, 1, 2, 1))
    assert scaled.flatten().tolist() == [0.0, 4.0, 9.0, 5.0]  # a ± w·δ per pair: 2 ∓ 2, 7 ± 2
    odd = haar_wavelet(torch.tensor([1.0, 3.0, 4.0]).view(1, 1, 3, 1), torch.zeros(1, 1, 1, 1))
    assert odd.flatten().tolist() == [2.0, 2.0, 0.0]  # the unpaired last slot is 0


def test_haar_weights_are_per_head_position_and_channel():
    x = torch.randn(2, 2, 6, 3)
    weight = torch.randn(1, 2, 3, 3)
    out = haar_wavelet(x, weight)
    even, odd = x[:, :, 0::2], x[:, :, 1::2]
    assert torch.allclose(out[:, :, 0::2], (even + odd) / 2 + weight * (even - odd) / 2)
    assert torch.allclose(out[:, :, 1::2], (even + odd) / 2 - weight * (even - odd) / 2)


def test_wearec_fourier_branch_is_the_identity_with_a_neutral_filter():
    torch.manual_seed(0)
    layer = WaveletFourierLayer(8, 10, 2, 1.0, 0.5, torch.randn(1, 2, 5, 4)).eval()
    with torch.no_grad():
        layer.adaptive[2].weight.zero_()
        layer.adaptive[2].bias.zero_()
        layer.base_bias.zero_()
    x = torch.randn(3, 10, 8)
    assert torch.allclose(layer(x), layer.norm(x + x), atol=1e-5)
    with torch.no_grad():
        layer.base_bias.fill_(0.5)  # a real bias on every bin of the orthonormal spectrum
    expected_shift = torch.fft.irfft(torch.full((6,), 0.5, dtype=torch.complex64), n=10, norm="ortho")
    assert torch.allclose(layer(x), layer.norm(x + x + expected_shift.view(1, 10, 1)), atol=1e-5)


def test_wearec_adaptive_filter_reads_the_context_mean_per_head():
    torch.manual_seed(0)
    layer = WaveletFourierLayer(8, 10, 2, 1.0, 0.0, torch.zeros(1, 2, 5, 4)).eval()
    x = torch.randn(1, 10, 8)
    shuffled = x[:, torch.randperm(10)]  # the same mean: the same filter, applied to other signals
    ctx = layer.adaptive(x.mean(1)).view(1, 2, 6, 2)
    assert torch.allclose(ctx, layer.adaptive(shuffled.mean(1)).view(1, 2, 6, 2), atol=1e-6)


def test_wearec_has_the_reference_parameter_count_on_lastfm():
    # the reference's 328,674 include an unused scalar gate_param in each of the 2 layers, which we leave out
    assert parameter_count(WEARec(n_items=3647, num_heads=2)) == 328_674 - 2


def test_wearec_layers_start_equal_but_their_mlps_do_not():
    model = WEARec(n_items=20, hidden_size=8, max_len=6)
    first, second = (b.layer for b in model.blocks)
    assert torch.equal(first.detail_weight, second.detail_weight)
    assert not torch.equal(first.adaptive[0].weight, second.adaptive[0].weight)
