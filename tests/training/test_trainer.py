import json

import pytest
import torch

from bsarec.api import SequentialRecommender
from bsarec.data.split import leave_one_out
from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import DataError
from bsarec.evaluation.metrics import evaluate
from bsarec.io import load_weights
from bsarec.models.popularity import Popularity
from bsarec.training.checkpoint import Checkpointer
from bsarec.training.early_stopping import EarlyStopping
from bsarec.training.history import read_history
from bsarec.training.sampling import sample_negatives

SMALL = dict(hidden_size=32, max_len=20, num_heads=1, batch_size=128, lr=0.003, threads=2)


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_users=200, n_clusters=8, items_per_cluster=20, max_length=40, seed=1)


def test_short_training_beats_popularity(data):
    split = leave_one_out(data, max_len=20)
    popularity = evaluate(Popularity(split), split.test)
    for model, loss in (("bsarec", "ce"), ("sasrec", "bce")):
        rec = SequentialRecommender(model, epochs=6, alpha=0.7, c=5, loss=loss, **SMALL).fit(
            data, progress=False
        )
        test = rec.metrics["test"]
        assert test["NDCG@10"] > 1.5 * popularity["NDCG@10"], (model, test, popularity)
        assert test["HR@10"] > popularity["HR@10"], model


def test_same_seed_same_numbers_and_another_seed_differs(data):
    runs = [
        SequentialRecommender("bsarec", epochs=2, seed=s, **SMALL).fit(data, progress=False)
        for s in (7, 7, 8)
    ]
    assert runs[0].metrics["test"] == runs[1].metrics["test"]
    assert runs[0].metrics["valid"] == runs[1].metrics["valid"]
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert runs[0].metrics["test"] != runs[2].metrics["test"]


def test_run_directory_contents(data, tmp_path):
    SequentialRecommender("bsarec", epochs=3, **SMALL).fit(data, run_dir=tmp_path, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["test"]) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR"}
    assert {"valid", "best_epoch", "epochs", "train_seconds"} <= set(metrics)
    history = read_history(tmp_path)
    assert [h["epoch"] for h in history] == [0, 1, 2] and all("valid_NDCG@20" in h for h in history)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"] == "bsarec" and config["max_len"] == 20 and config["loss"] == "ce"
    assert (tmp_path / "train.log").read_text().count("epoch") >= 3
    assert (tmp_path / "dataset" / "id_maps.json").is_file()
    reloaded = SequentialRecommender.load(tmp_path)
    assert reloaded.evaluate("test") == pytest.approx(metrics["test"])


def test_ctrl_c_keeps_the_best_checkpoint(data, tmp_path, press_ctrl_c):
    press_ctrl_c(3)
    rec = SequentialRecommender("bsarec", epochs=10, **SMALL).fit(data, run_dir=tmp_path, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["epochs"] == 2 and metrics["best_epoch"] in (0, 1)
    fresh = SequentialRecommender.load(tmp_path)
    for a, b in zip(fresh.model.parameters(), rec.model.parameters(), strict=True):
        assert torch.equal(a, b)  # the restored best weights are the ones on disk
    load_weights(fresh.model, tmp_path / "model.safetensors")


def test_a_run_stopped_by_ctrl_c_continues_on_resume_like_an_unstopped_one(data, tmp_path, press_ctrl_c):
    from bsarec.errors import ConfigError
    from bsarec.run_dir import finished_metrics

    settings = dict(epochs=4, patience=100, **SMALL)
    straight = SequentialRecommender("bsarec", **settings).fit(
        data, run_dir=tmp_path / "straight", progress=False
    )
    stopped = tmp_path / "stopped"
    press_ctrl_c(3)
    SequentialRecommender("bsarec", **settings).fit(data, run_dir=stopped, progress=False)
    press_ctrl_c(None)
    assert (stopped / "metrics.json").is_file() and finished_metrics(stopped) is None  # stopped, not finished
    resumed = SequentialRecommender.resume(stopped, progress=False)
    log_text = (stopped / "train.log").read_text()
    assert "resuming at epoch 2, batch 0" in log_text  # continued, not restarted
    assert "continuing a run stopped by Ctrl-C" in log_text  # said in the run's own log
    assert resumed.metrics["test"] == straight.metrics["test"] and resumed.metrics["epochs"] == 4
    assert finished_metrics(stopped) == json.loads((stopped / "metrics.json").read_text())
    with pytest.raises(ConfigError, match="this run has finished"):
        SequentialRecommender.resume(stopped, progress=False)


@pytest.mark.parametrize("before", [False, True])
@pytest.mark.parametrize("flush", [True, False])
def test_fit_flushes_denormals_while_it_runs_and_restores_the_mode(data, flush, before):
    def flushed() -> bool:  # 2**-140 is a denormal float32: kept by IEEE gradual underflow, zero when flushed
        return bool((torch.tensor([2.0**-140]) * 1.0 == 0).item())

    seen = []
    try:
        torch.set_flush_denormal(before)
        rec = SequentialRecommender("sasrec", epochs=1, flush_denormal=flush, **SMALL)
        rec.fit(data, progress=False, on_epoch=lambda epoch, metrics: seen.append(flushed()))
        assert seen == [flush]  # during training
        assert flushed() is before  # the caller's mode afterwards
    finally:
        torch.set_flush_denormal(False)


def test_early_stopping_is_strict_and_counts_patience():
    stop = EarlyStopping(patience=2)
    assert stop.update(0.1, 0) and not stop.update(0.1, 1)  # equal is not better
    assert not stop.should_stop
    assert not stop.update(0.05, 2) and stop.should_stop and stop.best_epoch == 0


def test_negatives_avoid_the_samples_own_items():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]]).repeat(500, 1)
    targets = torch.tensor([8, 1]).repeat(500)
    negatives = sample_negatives(inputs, targets, 10, generator)
    assert ((negatives >= 1) & (negatives < 10)).all()
    assert not (negatives[:, None] == inputs).any(1).any() and not (negatives == targets).any()
    assert set(negatives[::2].tolist()) == {4, 5, 6, 7, 9}


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


def test_read_history_names_the_file_and_line_of_a_bad_record(tmp_path):
    (tmp_path / "history.jsonl").write_text('{"epoch": 0, "loss": 1.5}\n{"epoch": 1, "lo\n')
    with pytest.raises(DataError, match=r"history\.jsonl, line 2: expected one JSON object"):
        read_history(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        read_history(tmp_path / "elsewhere")
    (tmp_path / "history.jsonl").write_text('{"epoch": 0, "loss": 1.5}\n')
    assert read_history(tmp_path) == [{"epoch": 0, "loss": 1.5}]
