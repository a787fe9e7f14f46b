import torch

from bsarec.models.layers import MASK_VALUE, Dropout, causal_padding_mask
from bsarec.models.sasrec import SASRec


def test_mask_is_causal_and_hides_padding_keys_with_an_additive_constant():
    mask = causal_padding_mask(torch.tensor([[0, 0, 3, 4]]))[0, 0]
    visible = mask == 0
    assert visible.tolist() == [
        [False, False, False, False],
        [False, False, False, False],
        [False, False, True, False],
        [False, False, True, True],
    ]
    assert set(mask.unique().tolist()) == {0.0, MASK_VALUE}


def test_all_padding_rows_stay_finite():
    torch.manual_seed(0)
    model = SASRec(n_items=10, hidden_size=8, max_len=5, num_heads=2).eval()
    out = model(torch.zeros(2, 5, dtype=torch.long))
    assert torch.isfinite(out).all()


def test_sasrec_is_causal_on_real_positions():
    torch.manual_seed(0)
    model = SASRec(n_items=30, hidden_size=16, max_len=8, num_heads=2).eval()
    ids = torch.randint(1, 30, (3, 8))
    changed = ids.clone()
    changed[:, 5:] = (changed[:, 5:] % 29) + 1
    assert torch.allclose(model(ids)[:, :5], model(changed)[:, :5], atol=1e-6)
    assert not torch.allclose(model(ids)[:, 5:], model(changed)[:, 5:], atol=1e-6)


def test_sasrec_bce_and_ce_losses_fall():
    for loss_name in ("bce", "ce"):
        torch.manual_seed(0)
        model = SASRec(n_items=20, hidden_size=16, max_len=6, num_heads=1, loss=loss_name)
        ids = torch.randint(1, 20, (32, 6))
        targets = (ids[:, -1] % 19) + 1
        negatives = (targets % 19) + 1
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        first = last = None
        for _ in range(30):
            loss = model.loss({"inputs": ids, "targets": targets, "negatives": negatives})
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = first if first is not None else loss.item()
            last = loss.item()
        assert last < 0.6 * first, loss_name


def test_bit_dropout_keeps_half_and_rescales():
    torch.manual_seed(0)
    drop = Dropout(0.5)
    x = torch.ones(200, 333, requires_grad=True)
    y = drop(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.5) < 0.01
    assert set(y.unique().tolist()) == {0.0, 2.0}
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the same mask scales the gradient
    assert not torch.equal(drop(x), drop(x))  # a fresh mask each call
    assert torch.equal(drop.eval()(x), x)
    other = Dropout(0.2).train()(torch.ones(100_000))
    assert abs((other == 0).float().mean().item() - 0.2) < 0.01
