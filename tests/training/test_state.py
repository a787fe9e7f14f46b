"""TrainState: what a checkpoint stores of it comes back unchanged."""

import torch

from bsarec.distributed import SINGLE, ProcessGroup
from bsarec.training.state import TrainState


def test_state_dict_round_trip():
    model = torch.nn.Linear(3, 2)
    state = TrainState.start(model, patience=4)
    state.epoch, state.batch, state.order = 5, 7, torch.randperm(20)
    state.loss_sum, state.seen, state.epoch_seconds, state.train_seconds = 12.5, 1792, 3.0, 40.0
    state.best_valid, state.history = {"NDCG@20": 0.3}, [{"epoch": 0, "loss": 1.0}]
    state.stopper.update(0.3, 4)
    tensors, values = state.state_dict()
    assert set(tensors) == {"best.weight", "best.bias", "order"}
    again = TrainState.start(torch.nn.Linear(3, 2), patience=4)
    again.load_state_dict(tensors, values, "cpu", SINGLE)
    assert torch.equal(again.order, state.order)
    assert all(torch.equal(again.best_weights[k], v) for k, v in state.best_weights.items())
    for name in (
        "epoch",
        "batch",
        "loss_sum",
        "seen",
        "epoch_seconds",
        "train_seconds",
        "best_valid",
        "history",
    ):
        assert getattr(again, name) == getattr(state, name), name
    assert again.stopper.state_dict() == state.stopper.state_dict()
    other_rank = TrainState.start(torch.nn.Linear(3, 2), patience=4)
    other_rank.load_state_dict(tensors, values, "cpu", ProcessGroup(rank=1, world=2))
    assert other_rank.loss_sum == 0.0  # a sum over processes, counted once by the main process


def test_between_epochs_there_is_no_order_or_running_loss():
    state = TrainState.start(torch.nn.Linear(3, 2), patience=4)
    state.order, state.batch, state.loss_sum, state.seen = torch.arange(4), 2, 1.0, 8
    state.next_epoch()
    assert (state.epoch, state.batch, state.order, state.loss_sum, state.seen) == (1, 0, None, 0.0, 0)
    assert "order" not in state.state_dict()[0]
