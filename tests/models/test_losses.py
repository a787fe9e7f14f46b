import torch

from bsarec.models.losses import softmax_cross_entropy
from bsarec.models.sasrec import SASRec


def test_fused_softmax_cross_entropy_matches_torch():
    torch.manual_seed(0)
    h = torch.randn(17, 8, requires_grad=True)
    table = torch.randn(40, 8, requires_grad=True)
    targets = torch.randint(0, 40, (17,))
    expected = torch.nn.functional.cross_entropy(h @ table.T, targets)
    expected.backward()
    grads = h.grad.clone(), table.grad.clone()
    h.grad = table.grad = None
    loss = softmax_cross_entropy(h, table, targets)
    (3.0 * loss).backward()  # the incoming gradient is honoured
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(h.grad, 3.0 * grads[0], atol=1e-6)
    assert torch.allclose(table.grad, 3.0 * grads[1], atol=1e-6)
    big = torch.tensor([[1000.0, 0.0]]), torch.eye(2), torch.tensor([1])  # no overflow
    assert torch.isfinite(softmax_cross_entropy(*big))


def test_fused_cross_entropy_under_bf16_autocast():
    torch.manual_seed(0)
    model = SASRec(n_items=30, hidden_size=16, max_len=6, num_heads=1, loss="ce")
    ids, targets = torch.randint(1, 30, (8, 6)), torch.randint(1, 30, (8,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss({"inputs": ids, "targets": targets})
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert (
        model.item_embeddings.grad.dtype == torch.float32 and torch.isfinite(model.item_embeddings.grad).all()
    )


def test_under_bf16_autocast_the_softmax_products_run_in_bf16_and_the_softmax_in_fp32():
    import torch.nn.functional as F

    from bsarec.models.losses import softmax_cross_entropy

    g = torch.Generator().manual_seed(0)
    h = torch.randn(16, 8, generator=g, requires_grad=True)
    table = torch.randn(50, 8, generator=g, requires_grad=True)
    targets = torch.randint(0, 50, (16,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = softmax_cross_entropy(h, table, targets)
    loss.backward()
    hb, tb = (
        h.detach().bfloat16().float().requires_grad_(),
        table.detach().bfloat16().float().requires_grad_(),
    )
    expected = F.cross_entropy((hb @ tb.T).bfloat16().float(), targets)  # bf16 logits, fp32 softmax
    expected.backward()
    assert loss.dtype == torch.float32 and torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(h.grad, hb.grad, atol=2e-2) and torch.allclose(table.grad, tb.grad, atol=2e-2)
    fp32 = softmax_cross_entropy(h.detach(), table.detach(), targets)  # outside autocast: fp32 products
    assert torch.allclose(fp32, F.cross_entropy(h.detach() @ table.detach().T, targets), atol=1e-6)
    assert not torch.allclose(fp32, loss, atol=1e-6)  # so the bf16 path did round its products
