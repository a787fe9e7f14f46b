import pytest
import torch

from bsarec.distributed import SINGLE
from bsarec.errors import DataError
from bsarec.training.checkpoint import Checkpoint, Checkpointer, RandomState
from bsarec.training.state import BestWeights, TrainState


def test_checkpointer_keeps_the_last_two_and_sweeps_halves_left_by_a_kill(tmp_path):
    def leave_halves():
        # a kill during pruning (JSON gone, tensors left), one during a save (tensors only), one from before
        # the JSON-first order (JSON only), one mid-write: none is a complete checkpoint
        (tmp_path / "epoch0000-batch000090.safetensors").write_bytes(b"half")
        (tmp_path / "epoch0000-batch000091.json").write_text('{"batch": 91}')
        (tmp_path / ".epoch0000-batch000092.json.tmp").write_text("{")

    def files():
        return sorted(p.name for p in tmp_path.iterdir())

    checkpoints = Checkpointer(tmp_path, keep=2)
    for batch in range(3):
        checkpoints.save(0, batch, {"w": torch.full((2,), float(batch))}, {"batch": batch})
    complete = files()
    assert complete == [f"epoch0000-batch00000{b}.{s}" for b in (1, 2) for s in ("json", "safetensors")]

    leave_halves()
    _, tensors, state = checkpoints.newest()
    assert state == {"batch": 2} and torch.equal(tensors["w"], torch.full((2,), 2.0))
    assert files() == complete

    leave_halves()
    checkpoints.save(1, 0, {"w": torch.zeros(2)}, {"batch": 0})
    assert [f for f in files() if not f.startswith(".")] == [
        "epoch0000-batch000002.json",
        "epoch0000-batch000002.safetensors",
        "epoch0001-batch000000.json",
        "epoch0001-batch000000.safetensors",
    ]


def test_a_checkpoint_gives_back_every_part_exactly(tmp_path):
    """Model, Adam (state keyed by parameter index, betas a tuple), train state, best weights and random
    generators: what `restore` loads into fresh objects is what `save` saw."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state, best = TrainState.start(patience=3), BestWeights(model)
    state.epoch, state.history = 1, [{"epoch": 0, "loss": 1.0}]
    state.stopper.update(0.5, 0)
    generator = torch.Generator().manual_seed(5)
    parts = {"model": model, "optimizer": optimizer, "state": state, "best": best}
    Checkpoint(Checkpointer(tmp_path), parts | {"rng": RandomState(generator, SINGLE)}, SINGLE).save(1, 0)
    expected_draw, expected_global = torch.rand(3, generator=generator), torch.rand(3)

    torch.manual_seed(1)
    other = torch.nn.Linear(3, 2)
    other_optimizer = torch.optim.Adam(other.parameters(), lr=0.01)
    other_state, other_best, other_generator = (
        TrainState.start(patience=3),
        BestWeights(other),
        torch.Generator(),
    )
    parts = {"model": other, "optimizer": other_optimizer, "state": other_state, "best": other_best}
    checkpoint = Checkpoint(
        Checkpointer(tmp_path), parts | {"rng": RandomState(other_generator, SINGLE)}, SINGLE
    )
    checkpoint.restore(checkpoint.newest())
    assert all(
        torch.equal(a, b)
        for a, b in zip(other.state_dict().values(), model.state_dict().values(), strict=True)
    )
    assert all(torch.equal(best.weights[k], other_best.weights[k]) for k in best.weights)
    saved, restored = optimizer.state_dict(), other_optimizer.state_dict()
    assert restored["param_groups"] == saved["param_groups"] and isinstance(
        restored["param_groups"][0]["betas"], tuple
    )
    for index, values in saved["state"].items():
        assert all(torch.equal(values[key], restored["state"][index][key]) for key in values)
    assert other_state.state_dict() == state.state_dict()
    assert torch.equal(torch.rand(3, generator=other_generator), expected_draw)
    assert torch.equal(torch.rand(3), expected_global)


def test_a_checkpoint_of_another_layout_is_refused_naming_the_file(tmp_path):
    Checkpointer(tmp_path).save(0, 0, {"w": torch.zeros(1)}, {"epoch": 0, "batch": 0, "history": []})
    model = torch.nn.Linear(3, 2)
    checkpoint = Checkpoint(Checkpointer(tmp_path), {"model": model}, SINGLE)
    with pytest.raises(DataError, match="epoch0000-batch000000.json"):
        checkpoint.restore(checkpoint.newest())


def test_another_models_optimizer_state_is_refused_not_loaded(tmp_path):
    """torch.optim.Adam.load_state_dict accepts moments of any shape; a checkpoint whose moments do not fit
    the parameters is refused before a step could read them."""
    small, large = torch.nn.Linear(3, 2), torch.nn.Linear(5, 4)
    for model in (small, large):
        model(torch.randn(2, model.in_features)).sum().backward()
    adam = torch.optim.Adam(large.parameters())
    adam.step()
    Checkpoint(Checkpointer(tmp_path), {"optimizer": adam, "state": TrainState.start(3)}, SINGLE).save(0, 0)
    checkpoint = Checkpoint(
        Checkpointer(tmp_path), {"optimizer": torch.optim.Adam(small.parameters())}, SINGLE
    )
    with pytest.raises(DataError, match="optimizer exp_avg of parameter 0 has shape"):
        checkpoint.restore(checkpoint.newest())
