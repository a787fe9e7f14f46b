"""Every model: it trains, shapes hold, masks hold, nothing leaks between samples; plus each baseline's quirks."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bsarec.config import RunConfig
from bsarec.models import MODELS, build_model, model_parameters
from bsarec.models.bert4rec import BERT4Rec
from bsarec.models.caser import Caser
from bsarec.models.fearec import FEARec, HybridAttention, band_projection, frequency_band
from bsarec.models.layers import bidirectional_padding_mask
from bsarec.models.losses import info_nce

N_ITEMS, N_USERS, MAX_LEN = 40, 12, 10


def small_model(name: str, **changes) -> torch.nn.Module:
    changes = {k: v for k, v in changes.items() if k in model_parameters(name)}  # the model's own settings
    config = RunConfig(model=name, max_len=MAX_LEN, hidden_size=16, **changes)
    return build_model(name, N_ITEMS, config.model_settings(), n_users=N_USERS)


def batch(model, n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, N_ITEMS, (n, MAX_LEN), generator=g)
    ids[: n // 2, : MAX_LEN // 2] = 0  # half of the rows are short (left padded)
    targets = (ids[:, -1] * 7) % (N_ITEMS - 1) + 1  # a learnable function of the history
    out = {"inputs": ids, "targets": targets}
    if model.needs_negatives:
        out["negatives"] = (targets % (N_ITEMS - 1)) + 1
    if model.needs_users:
        out["users"] = torch.arange(n) % N_USERS
    if model.needs_positives:
        out["positives"] = ids.roll(1, 0)
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_model_trains_and_its_loss_falls(name):
    torch.manual_seed(0)
    model = small_model(name, hidden_dropout=0.1, attn_dropout=0.1)
    data = batch(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        loss = model.loss(data)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_and_eval_rows_are_independent(name):
    torch.manual_seed(0)
    model = small_model(name).eval()
    data = batch(model, n=6)
    users = data.get("users")
    h = model.encode(data["inputs"], users=users)
    assert h.shape == (6, 16)
    assert model.item_embeddings.shape == (N_ITEMS, 16)  # BERT4Rec's mask row is not a candidate
    # no sample sees another: each row alone gives the same output as in the batch
    for i in range(6):
        alone = model.encode(data["inputs"][i : i + 1], users=None if users is None else users[i : i + 1])
        assert torch.allclose(alone[0], h[i], atol=1e-5)
    # eval is deterministic (dropout off)
    assert torch.equal(model.encode(data["inputs"], users=users), h)


@pytest.mark.parametrize("name", ["sasrec", "duorec", "bert4rec"])
def test_masked_attention_models_ignore_the_padding_vector(name):
    torch.manual_seed(0)
    model = small_model(name).eval()
    ids = batch(model, n=4)["inputs"]
    before = model.encode(ids)
    with torch.no_grad():
        model.embedding.item.weight[0] = torch.randn(16) * 5
    assert torch.allclose(model.encode(ids), before, atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "duorec"])
def test_causal_models_do_not_see_later_slots(name):
    torch.manual_seed(0)
    model = small_model(name).eval()
    ids = torch.randint(1, N_ITEMS, (3, MAX_LEN))
    changed = ids.clone()
    changed[:, 6:] = changed[:, 6:] % (N_ITEMS - 1) + 1
    assert torch.allclose(model(ids)[:, :6], model(changed)[:, :6], atol=1e-6)


def test_no_training_input_holds_its_target():
    """The split's samples never contain their own target after the prefix (no model sees its target)."""
    from bsarec.data.split import prefix_samples

    for padding in ("zeros", "cyclic", "reflect", "symmetric"):
        x, y = prefix_samples(np.array([5, 6, 7, 8]), 6, padding)
        for row, target in zip(x, y, strict=True):
            assert target not in row.tolist()


# -- Caser ---------------------------------------------------------------------------------------------------


def test_caser_convolutions_equal_the_conv2d_modules():
    torch.manual_seed(0)
    model = Caser(N_ITEMS, N_USERS, hidden_size=16, max_len=MAX_LEN).eval()
    assert len(model.conv_h) == MAX_LEN  # one horizontal convolution per height 1..N, as the reference
    ids = torch.randint(0, N_ITEMS, (3, MAX_LEN))
    e = model.item(ids).unsqueeze(1)
    o_v = model.conv_v(e).view(3, -1)
    o_h = [F.relu(conv(e).squeeze(3)).amax(2) for conv in model.conv_h]
    z = F.relu(model.fc1(torch.cat([o_v, *o_h], 1)))
    users = torch.tensor([0, 3, 5])
    expected = F.relu(model.fc2(torch.cat([z, model.user(users)], 1)))
    assert torch.allclose(model.encode(ids, users), expected, atol=1e-5)


def test_caser_loss_adds_plain_l2_norms():
    torch.manual_seed(0)
    model = Caser(N_ITEMS, N_USERS, hidden_size=16, max_len=MAX_LEN, reg_weight=0.5).eval()
    data = batch(model, n=4)
    with_reg = model.loss(data).item()
    model.reg_weight = 0.0
    without = model.loss(data).item()
    norms = sum(
        w.norm().item()
        for w in (
            model.user.weight,
            model.item.weight,
            model.conv_v.weight,
            model.fc1.weight,
            model.fc2.weight,
        )
    ) + sum(c.weight.norm().item() for c in model.conv_h)
    assert with_reg - without == pytest.approx(0.5 * norms, rel=1e-4)


# -- BERT4Rec ------------------------------------------------------------------------------------------------


def test_bert4rec_mask_token_and_bidirectional_mask():
    model = BERT4Rec(N_ITEMS, hidden_size=16, max_len=MAX_LEN, num_heads=2)
    assert model.mask_token == N_ITEMS and model.embedding.item.num_embeddings == N_ITEMS + 1
    assert model.mask_count == 2  # int(10 * 0.2)
    shifted = model.with_mask_token(torch.tensor([[0, 0, 0, 0, 0, 0, 0, 3, 4, 5]]))
    assert shifted.tolist() == [[0, 0, 0, 0, 0, 0, 3, 4, 5, N_ITEMS]]
    visible = (bidirectional_padding_mask(shifted)[0, 0, 0] == 0).tolist()
    assert visible == [False] * 6 + [True] * 4  # the mask token is a visible key


def test_bert4rec_reads_a_masked_slot():
    torch.manual_seed(0)
    model = BERT4Rec(N_ITEMS, hidden_size=16, max_len=MAX_LEN, num_heads=2, hidden_dropout=0, attn_dropout=0)
    seen = {}
    original = model.forward

    def spy(ids, last_only=False):
        seen["ids"] = ids
        out = original(ids, last_only)
        seen["out"] = out
        return out

    model.forward = spy
    ids = torch.randint(1, N_ITEMS, (5, MAX_LEN))
    loss = model.loss({"inputs": ids, "targets": torch.ones(5, dtype=torch.long)})
    assert ((seen["ids"] == N_ITEMS).sum(1) == model.mask_count).all()
    assert torch.isfinite(loss)


# -- FEARec --------------------------------------------------------------------------------------------------


def test_fearec_bands_as_the_reference():
    assert frequency_band(50, 0, 2, 0.6) == (10, 26)
    assert frequency_band(50, 1, 2, 0.6) == (0, 16)
    assert frequency_band(50, 0, 2, 0.4) == (13, 26)  # "local": disjoint halves
    assert frequency_band(50, 1, 2, 0.4) == (0, 13)


def test_band_projection_equals_the_fft_form():
    x = torch.randn(3, 50, 4, dtype=torch.float64)
    p = band_projection(50, 10, 26).double()
    spectrum = torch.fft.rfft(x, dim=1)
    spectrum[:, :10] = 0
    assert torch.allclose(p @ x, torch.fft.irfft(spectrum, n=50, dim=1), atol=1e-6)


def test_delay_aggregation_equals_rolled_values():
    torch.manual_seed(0)
    layer = HybridAttention(8, 12, 2, (0, 7), 0.1, top_k=4, attn_dropout=0, hidden_dropout=0).eval()
    corr = torch.randn(3, 12)
    v = torch.randn(3, 12, 8)
    weights = layer.delay_weights(corr, groups=1)
    ours = weights[:, layer.delay_of] @ v
    top = corr.topk(4, dim=-1)
    soft = torch.softmax(top.values, -1)
    expected = torch.stack(
        [sum(soft[b, i] * torch.roll(v[b], -int(top.indices[b, i]), 0) for i in range(4)) for b in range(3)]
    )
    assert torch.allclose(ours, expected, atol=1e-6)


def test_fearec_training_delays_are_shared_within_each_pass():
    layer = HybridAttention(8, 12, 2, (0, 7), 0.1, top_k=3, attn_dropout=0, hidden_dropout=0).train()
    corr = torch.randn(6, 12)
    chosen = layer.delay_weights(corr, groups=2) > 0
    assert torch.equal(chosen[0], chosen[1]) and torch.equal(chosen[0], chosen[2])
    assert torch.equal(chosen[3], chosen[5])
    assert chosen.sum(1).tolist() == [3] * 6


def test_fearec_autocorrelation_is_the_channel_mean_circular_correlation():
    layer = HybridAttention(4, 8, 1, (0, 5), 0.1, top_k=2, attn_dropout=0, hidden_dropout=0)
    q, k = torch.randn(2, 8, 4), torch.randn(2, 8, 4)
    corr = layer.autocorrelation(q, k)
    direct = torch.stack([(torch.roll(q, -tau, 1) * k).sum(1).mean(-1) for tau in range(8)], 1)
    assert torch.allclose(corr, direct, atol=1e-5)  # full band: plain circular cross-correlation


def test_fearec_top_k_is_int_factor_log_n():
    model = FEARec(N_ITEMS, hidden_size=16, max_len=50, num_heads=2)
    assert model.blocks[0].attention.top_k == 39


def test_info_nce_matches_the_reference_construction():
    torch.manual_seed(0)
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    z = torch.cat([a, b])
    sim = z @ z.T
    n = 8
    pos = torch.cat([torch.diag(sim, 4), torch.diag(sim, -4)]).view(n, 1)
    mask = ~torch.eye(n, dtype=torch.bool)
    for i in range(4):
        mask[i, 4 + i] = mask[4 + i, i] = False
    logits = torch.cat([pos, sim[mask].view(n, -1)], 1)
    expected = F.cross_entropy(logits, torch.zeros(n, dtype=torch.long))
    assert torch.allclose(info_nce(a, b, tau=1.0), expected, atol=1e-6)


def test_fearec_real_autocorrelation_equals_the_complex_fft_form():
    layer = HybridAttention(6, 12, 2, (3, 7), 0.1, top_k=2, attn_dropout=0, hidden_dropout=0)
    q, k = torch.randn(4, 12, 6), torch.randn(4, 12, 6)
    spectrum = (torch.fft.rfft(q, dim=1) * torch.fft.rfft(k, dim=1).conj()).mean(-1)
    spectrum[:, :3] = 0
    spectrum[:, 7:] = 0
    assert torch.allclose(layer.autocorrelation(q, k), torch.fft.irfft(spectrum, n=12, dim=1), atol=1e-5)
    odd = HybridAttention(6, 11, 2, (0, 6), 0.1, top_k=2, attn_dropout=0, hidden_dropout=0)
    q, k = torch.randn(2, 11, 6), torch.randn(2, 11, 6)
    full = torch.fft.irfft(torch.fft.rfft(q, dim=1) * torch.fft.rfft(k, dim=1).conj(), n=11, dim=1).mean(-1)
    assert torch.allclose(odd.autocorrelation(q, k), full, atol=1e-5)


def test_fearec_loss_equals_the_loss_of_three_full_passes():
    """The loss runs the anchor's final FFN on its last row only; with dropout off it must equal the loss
    computed from the three passes' whole outputs, value and gradients."""
    model = small_model("fearec", hidden_dropout=0.0, attn_dropout=0.0).train()
    data = batch(model)
    fast = model.loss(data)
    fast_grads = torch.autograd.grad(fast, list(model.parameters()))
    states = model(torch.cat([data["inputs"], data["inputs"], data["positives"]]), groups=3)
    anchor, augmented, semantic = states.split(len(data["targets"]))
    logits = anchor[:, -1] @ model.item_embeddings.T
    spectra = torch.fft.rfft(augmented, dim=1, norm="ortho") - torch.fft.rfft(semantic, dim=1, norm="ortho")
    full = (
        F.cross_entropy(logits, data["targets"])
        + model.lmd_sem * info_nce(augmented[:, -1], semantic[:, -1], model.tau, model.sim)
        + model.freq_loss_weight * spectra.abs().mean()
    )
    assert torch.allclose(fast, full, atol=1e-5)
    for a, b in zip(fast_grads, torch.autograd.grad(full, list(model.parameters())), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
