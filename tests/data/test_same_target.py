import torch

from bsarec.data.same_target import SameTargetSampler


def test_positive_has_the_same_target_and_other_content():
    inputs = torch.tensor([[0, 1], [0, 2], [0, 1], [0, 3], [1, 2], [0, 0]])
    targets = torch.tensor([5, 5, 5, 6, 7, 7])
    sampler = SameTargetSampler(inputs, targets)
    g = torch.Generator().manual_seed(0)
    anchors = torch.arange(6).repeat(200)
    draws = sampler.sample(anchors, g)
    assert torch.equal(targets[draws], targets[anchors])
    differs = (inputs[draws] != inputs[anchors]).any(1)
    # target 5: samples 0 and 2 share content [0, 1]; they must get sample 1, and sample 1 gets 0 or 2
    for a in (0, 2):
        assert set(draws[anchors == a].tolist()) == {1}
    assert set(draws[anchors == 1].tolist()) == {0, 2}
    assert set(draws[anchors == 3].tolist()) == {3}  # the only sample of its target gets itself back
    assert differs[(anchors == 4) | (anchors == 5)].all()


def test_a_group_of_one_content_returns_that_content():
    inputs = torch.tensor([[0, 0], [0, 0]])  # two users whose first item is the same: identical samples
    targets = torch.tensor([3, 3])
    sampler = SameTargetSampler(inputs, targets)
    draws = sampler.sample(torch.tensor([0, 1]), torch.Generator().manual_seed(1))
    assert targets[draws].tolist() == [3, 3]
