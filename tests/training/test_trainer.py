import json

import pytest
import torch

from bsarec.api import SequentialRecommender
from bsarec.data.split import leave_one_out
from bsarec.data.synthetic import generate_synthetic
from bsarec.evaluation.metrics import evaluate
from bsarec.evaluation.popularity import Popularity
from bsarec.io import load_weights
from bsarec.run_dir import read_history

SMALL = dict(hidden_size=32, max_len=20, num_heads=1, batch_size=128, lr=0.003, threads=2)


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_users=200, n_clusters=8, items_per_cluster=20, max_length=40, seed=1)


@pytest.mark.slow
def test_short_training_beats_popularity(data):
    split = leave_one_out(data, max_len=20)
    popularity = evaluate(Popularity(split), split.test)
    for model, loss, own in (("bsarec", "ce", {"alpha": 0.7, "c": 5}), ("sasrec", "bce", {})):
        rec = SequentialRecommender(model, epochs=6, loss=loss, **own, **SMALL).fit(data, progress=False)
        test = rec.metrics["test"]
        assert test["NDCG@10"] > 1.5 * popularity["NDCG@10"], (model, test, popularity)
        assert test["HR@10"] > popularity["HR@10"], model


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_run_stopped_by_ctrl_c_continues_on_resume_like_an_unstopped_one(data, tmp_path, press_ctrl_c):
    from bsarec.errors import ConfigError
    from bsarec.run_dir import RunDir

    settings = dict(epochs=4, patience=100, **SMALL)
    straight = SequentialRecommender("bsarec", **settings).fit(
        data, run_dir=tmp_path / "straight", progress=False
    )
    stopped = tmp_path / "stopped"
    press_ctrl_c(3)
    SequentialRecommender("bsarec", **settings).fit(data, run_dir=stopped, progress=False)
    press_ctrl_c(None)
    assert (stopped / "metrics.json").is_file() and RunDir(
        stopped
    ).finished_metrics() is None  # stopped, not finished
    resumed = SequentialRecommender.resume(stopped, progress=False)
    log_text = (stopped / "train.log").read_text()
    assert "resuming at epoch 2, batch 0" in log_text  # continued, not restarted
    assert "continuing a run stopped by Ctrl-C" in log_text  # said in the run's own log
    assert resumed.metrics["test"] == straight.metrics["test"] and resumed.metrics["epochs"] == 4
    assert RunDir(stopped).finished_metrics() == json.loads((stopped / "metrics.json").read_text())
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


def test_a_diverged_run_stops_with_an_error_naming_the_epoch_not_a_perfect_score(tmp_path):
    from bsarec.errors import NonFiniteError

    data = generate_synthetic(n_users=60, n_clusters=3, items_per_cluster=8, max_length=14, seed=4)
    rec = SequentialRecommender("bsarec", epochs=3, **{**SMALL, "max_len": 10, "lr": 1e30})
    with pytest.raises(NonFiniteError, match="epoch 0: the training loss is nan: the run diverged"):
        rec.fit(data, run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.json").exists()  # no metrics claim anything about it


@pytest.mark.slow
def test_a_compiled_step_trains_as_the_eager_one():
    """torch.compile fuses the step (on CUDA as CUDA graphs); the losses and metrics stay those of eager."""
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=8)
    settings = {"epochs": 2, "hidden_size": 16, "max_len": 8, "batch_size": 48, "hidden_dropout": 0.0}
    settings["attn_dropout"] = 0.0
    eager = SequentialRecommender("sasrec", loss="ce", **settings).fit(data, progress=False)
    compiled = SequentialRecommender("sasrec", loss="ce", compile=True, **settings).fit(data, progress=False)
    for a, b in zip(eager.result.history, compiled.result.history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["valid_NDCG@20"] == pytest.approx(a["valid_NDCG@20"], abs=2 / 40)
