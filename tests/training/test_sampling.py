import torch

from bsarec.config import RunConfig
from bsarec.data.split import leave_one_out
from bsarec.data.synthetic import generate_synthetic
from bsarec.models import build_model
from bsarec.training.sampling import BatchMaker, sample_negatives


def test_negatives_avoid_the_samples_own_items():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]]).repeat(500, 1)
    targets = torch.tensor([8, 1]).repeat(500)
    negatives = sample_negatives(inputs, targets, 10, generator)
    assert ((negatives >= 1) & (negatives < 10)).all()
    assert not (negatives[:, None] == inputs).any(1).any() and not (negatives == targets).any()
    assert set(negatives[::2].tolist()) == {4, 5, 6, 7, 9}


def test_batches_gathered_on_the_device_equal_the_host_ones():
    """On a GPU the samples stay on the device; the batches (and every draw) are those of the host path."""
    data = generate_synthetic(n_users=30, n_clusters=3, items_per_cluster=6, max_length=12, seed=2)
    split = leave_one_out(data, 8)
    for name in ("sasrec", "duorec", "caser"):  # negatives; same-target positives; user rows
        model = build_model(name, data.n_items, RunConfig(model=name, max_len=8).model_settings(), n_users=40)
        host, device = BatchMaker(model, split, "cpu"), BatchMaker(model, split, "cpu", resident=True)
        index = torch.randperm(len(split.train_targets))[:16]
        a = host(index, torch.Generator().manual_seed(3), rows=(2, 10))
        b = device(index, torch.Generator().manual_seed(3), rows=(2, 10))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
