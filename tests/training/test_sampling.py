import torch

from bsarec.training.sampling import sample_negatives


def test_negatives_avoid_the_samples_own_items():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]]).repeat(500, 1)
    targets = torch.tensor([8, 1]).repeat(500)
    negatives = sample_negatives(inputs, targets, 10, generator)
    assert ((negatives >= 1) & (negatives < 10)).all()
    assert not (negatives[:, None] == inputs).any(1).any() and not (negatives == targets).any()
    assert set(negatives[::2].tolist()) == {4, 5, 6, 7, 9}
