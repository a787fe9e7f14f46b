"""TrainState and BestWeights: what a checkpoint stores of them comes back unchanged."""

import pytest
import torch

from bsarec.training.state import BestWeights, TrainState


def test_state_dict_round_trip():
    state = TrainState.start(patience=4)
    state.epoch, state.batch, state.order = 5, 7, torch.randperm(20)
    state.loss_sum, state.seen, state.epoch_seconds, state.train_seconds = 12.5, 1792, 3.0, 40.0
    state.best_valid, state.history = {"NDCG@20": 0.3}, [{"epoch": 0, "loss": 1.0}]
    state.stopper.update(0.3, 4)
    again = TrainState.start(patience=4)
    again.load_state_dict(state.state_dict())
    assert torch.equal(again.order, state.order)
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


def test_between_epochs_there_is_no_order_or_running_loss():
    state = TrainState.start(patience=4)
    state.order, state.batch, state.loss_sum, state.seen = torch.arange(4), 2, 1.0, 8
    state.next_epoch()
    assert (state.epoch, state.batch, state.order, state.loss_sum, state.seen) == (1, 0, None, 0.0, 0)
    assert state.state_dict()["order"] is None


def test_best_weights_are_a_copy_and_refuse_another_models():
    model = torch.nn.Linear(3, 2)
    best = BestWeights(model)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    best.restore(model)
    assert torch.equal(model.weight, before)
    with pytest.raises(KeyError, match="expected 2 tensors"):
        best.load_state_dict({"weight": before})
