import math

import pytest
import torch

from bsarec.models.bsarec import BSARec, BSARecBlock, FrequencyLayer, low_pass_fft, low_pass_matrix


def explicit_low_pass(x: torch.Tensor, c: int) -> torch.Tensor:
    """Low-pass by an explicit complex DFT matrix: keep bins 0..c//2 and their mirror images."""
    n = x.size(1)
    k = torch.arange(n, dtype=torch.float64)
    dft = torch.exp(-2j * math.pi * k[:, None] * k[None, :] / n) / math.sqrt(n)
    kept = c // 2 + 1
    keep = torch.zeros(n, dtype=torch.complex128)
    for b in range(min(kept, n // 2 + 1)):
        keep[b] = 1
        keep[(n - b) % n] = 1
    operator = (dft.conj().T @ torch.diag(keep) @ dft).real
    return torch.einsum("ij,bjd->bid", operator, x.double()).float()


@pytest.mark.parametrize("n", [50, 7, 8])
@pytest.mark.parametrize("c", [1, 3, 5, 9])
def test_low_pass_matches_an_explicit_dft_matrix(n, c):
    x = torch.randn(3, n, 4)
    expected = explicit_low_pass(x, c)
    assert torch.allclose(low_pass_fft(x, c), expected, atol=1e-5)
    assert torch.allclose(torch.einsum("ij,bjd->bid", low_pass_matrix(n, c), x), expected, atol=1e-5)


def test_constant_sequence_passes_the_low_pass_unchanged_and_c1_keeps_only_the_mean():
    x = torch.randn(2, 10, 3)
    assert torch.allclose(low_pass_fft(torch.ones(1, 10, 1), 1), torch.ones(1, 10, 1), atol=1e-6)
    assert torch.allclose(low_pass_fft(x, 1), x.mean(1, keepdim=True).expand_as(x), atol=1e-6)


def frequency_layer(n=12, d=6, c=3, sqrt_beta=None):
    layer = FrequencyLayer(
        d, n, c, dropout=0.5, sqrt_beta=sqrt_beta if sqrt_beta is not None else torch.randn(d)
    )
    return layer.eval()


def test_frequency_layer_output_is_low_plus_beta_high():
    layer = frequency_layer()
    x = torch.randn(2, 12, 6)
    low = explicit_low_pass(x, 3)
    beta = layer.sqrt_beta.detach() ** 2
    expected = layer.norm(x + low + beta * (x - low))
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_beta_one_is_an_identity_filter():
    layer = frequency_layer(sqrt_beta=torch.ones(6))
    x = torch.randn(2, 12, 6)
    assert torch.allclose(layer(x), layer.norm(x + x), atol=1e-5)


def test_c_covering_all_bins_is_an_identity_low_pass():
    x = torch.randn(2, 12, 6)
    for c in (12, 13, 40):
        assert torch.allclose(low_pass_fft(x, c), x, atol=1e-5)
        layer = frequency_layer(c=c)  # high part is zero, so beta has no effect
        assert torch.allclose(layer(x), layer.norm(x + x), atol=1e-5)


def test_alpha_zero_is_the_attention_branch_alone():
    block = BSARecBlock(
        8, 10, 2, alpha=0.0, c=3, hidden_dropout=0.5, attn_dropout=0.5, sqrt_beta=torch.randn(8)
    ).eval()
    x = torch.randn(3, 10, 8)
    mask = torch.zeros(3, 1, 10, 10)
    assert torch.allclose(block(x, mask), block.ffn(block.attention(x, mask)), atol=1e-6)
    block.mix.copy_(torch.tensor([1.0, 0.0]))  # alpha 1
    assert torch.allclose(block(x, mask), block.ffn(block.frequency(x)), atol=1e-6)


def test_sqrt_beta_starts_identical_in_every_layer_and_padding_row_is_random():
    torch.manual_seed(0)
    model = BSARec(n_items=30, hidden_size=8, max_len=10, num_layers=3, num_heads=2)
    betas = [b.frequency.sqrt_beta.detach() for b in model.blocks]
    assert all(torch.equal(betas[0], b) for b in betas[1:])
    assert model.item_embeddings[0].abs().sum() > 0  # N(0, 0.02) overwrote the padding row, as the reference


def test_last_only_forward_equals_the_full_forward_at_the_last_position():
    torch.manual_seed(0)
    model = BSARec(n_items=30, hidden_size=16, max_len=10, num_layers=2, num_heads=2, c=5).eval()
    ids = torch.randint(1, 30, (4, 10))
    ids[0, :6] = 0
    ids[1, :] = 0
    assert torch.allclose(model(ids)[:, -1], model.encode(ids), atol=1e-5)


def test_training_reduces_the_loss_and_gradients_reach_beta():
    torch.manual_seed(0)
    model = BSARec(n_items=20, hidden_size=16, max_len=6, num_heads=1, alpha=0.5, c=3)
    ids = torch.randint(1, 20, (32, 6))
    targets = (ids[:, -1] % 19) + 1  # a learnable rule
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        loss = model.loss({"inputs": ids, "targets": targets})
        opt.zero_grad()
        loss.backward()
        assert model.blocks[0].frequency.sqrt_beta.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_invalid_settings():
    with pytest.raises(ValueError, match="alpha"):
        BSARec(n_items=5, alpha=1.5)
    with pytest.raises(ValueError, match="num_heads"):
        BSARec(n_items=5, hidden_size=10, num_heads=3)
