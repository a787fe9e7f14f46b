import torch

from bsarec.training.checkpoint import Checkpointer


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
    tensors, state = checkpoints.latest()
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
