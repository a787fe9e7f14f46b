"""Packed runs: each run of a pack equals its unpacked run (without dropout, whose masks vmap draws
differently), runs keep their own settings and early stopping, and what cannot be packed is refused."""

import logging
import shutil

import pytest
import torch

from bsarec import SequentialRecommender
from bsarec.config import RunConfig
from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import ConfigError
from bsarec.models.layers import Dropout, per_run_dropout
from bsarec.run_dir import RunDir
from bsarec.runs import fit_packed
from bsarec.training.packed import PackedAdam, check_packable

NO_DROPOUT = {"hidden_dropout": 0.0, "attn_dropout": 0.0, "hidden_size": 16, "max_len": 10, "batch_size": 64}


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_users=80, n_clusters=4, items_per_cluster=8, max_length=16, seed=5)


@pytest.mark.parametrize(
    ("model", "varied"),
    [
        ("bsarec", [{"seed": 1}, {"seed": 2, "lr": 0.003, "alpha": 0.5, "c": 5}, {"seed": 3, "patience": 1}]),
        ("duorec", [{"seed": 1}, {"seed": 2, "lr": 0.002, "weight_decay": 0.01}]),
    ],
)
@pytest.mark.slow
def test_each_packed_run_equals_its_unpacked_run(data, tmp_path, model, varied):
    configs = [RunConfig(model=model, epochs=4, **NO_DROPOUT, **v) for v in varied]
    packed = fit_packed(configs, data, [tmp_path / f"run{i}" for i in range(len(configs))])
    for config, rec in zip(configs, packed, strict=True):
        alone = SequentialRecommender(config=config).fit(data, progress=False)
        for mine, theirs in zip(rec.result.history, alone.result.history, strict=True):
            assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
            assert mine["valid_NDCG@20"] == pytest.approx(theirs["valid_NDCG@20"], abs=2 / 80)
        assert rec.result.best_epoch == alone.result.best_epoch and rec.result.epochs == alone.result.epochs
        for metric, value in alone.metrics["test"].items():
            assert rec.metrics["test"][metric] == pytest.approx(value, abs=2 / 80), metric
    assert packed[-1].result.epochs <= 4
    saved = SequentialRecommender.load(tmp_path / "run1")  # a packed run's directory is an ordinary run
    assert saved.metrics["test"] == packed[1].metrics["test"]
    assert len((tmp_path / "run1" / "history.jsonl").read_text().splitlines()) == packed[1].result.epochs


@pytest.mark.slow
def test_each_packed_run_logs_its_own_epochs_to_its_train_log(data, tmp_path):
    configs = [RunConfig(model="bsarec", epochs=3, seed=s, **NO_DROPOUT) for s in (1, 2)]
    dirs = [tmp_path / f"run{i}" for i in range(2)]
    packed = fit_packed(configs, data, dirs)
    for index, (path, rec) in enumerate(zip(dirs, packed, strict=True)):
        text = RunDir(path).log_file.read_text()
        mine = [line for line in text.splitlines() if " epoch " in line and "valid" in line]
        assert len(mine) == rec.result.epochs, text
        assert all(f"run {index} (seed {index + 1}): epoch" in line for line in mine), text
        assert f"as run {index} of a pack of 2 (seed {index + 1})" in text
        assert f"run {1 - index} (seed" not in text  # not the other run's lines
    before = len(logging.getLogger("bsarec").handlers)
    fit_packed(configs, data, [tmp_path / f"again{i}" for i in range(2)])
    assert len(logging.getLogger("bsarec").handlers) == before  # the log files are let go


def test_packed_runs_draw_their_own_dropout_masks(data):
    configs = [RunConfig(model="bsarec", epochs=1, hidden_size=16, max_len=10, seed=7) for _ in range(2)]
    first, second = fit_packed(configs, data)  # the same seed twice: only the dropout masks differ
    assert first.result.history[0]["loss"] != second.result.history[0]["loss"]


def test_packed_runs_drop_with_their_own_dropout(data):
    """Run 0 (no dropout) shares a pack with run 1 (dropout 0.3, otherwise the same): run 0 still equals its
    unpacked run, so its p stayed 0, and run 1 trains otherwise."""
    configs = [
        RunConfig(model="sasrec", epochs=2, seed=1, **{**NO_DROPOUT, "hidden_dropout": p}) for p in (0.0, 0.3)
    ]
    without, dropping = fit_packed(configs, data)
    alone = SequentialRecommender(config=configs[0]).fit(data, progress=False)
    for mine, theirs in zip(without.result.history, alone.result.history, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
    assert dropping.result.history[0]["loss"] != pytest.approx(without.result.history[0]["loss"], rel=1e-3)
    assert all(
        m.p_tensor is None for m in dropping.model.modules() if isinstance(m, Dropout)
    )  # p a number again


def test_a_dropout_with_its_p_as_a_tensor_drops_that_share():
    layer = per_run_dropout(Dropout(0.3))
    torch.manual_seed(0)
    out = layer(torch.ones(100_000))
    assert (out == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert out.mean().item() == pytest.approx(1.0, abs=0.02)  # inverted: the expectation is kept
    assert torch.equal(layer.eval()(torch.ones(5)), torch.ones(5))


class Cut(Exception):
    """A pack killed after an epoch's checkpoints were written."""


def cut_after(epoch: int, run: int = 1):
    def on_epoch(index, record):
        if record["epoch"] == epoch and index == run:
            raise Cut

    return on_epoch


@pytest.mark.slow
def test_a_cut_off_pack_continues_from_its_checkpoints_as_if_never_cut(data, tmp_path, caplog):
    """With dropout (the global generator restored), and a run that stopped before the cut (frozen, with an
    older checkpoint than the others)."""
    configs = [
        RunConfig(model="bsarec", epochs=8, hidden_size=16, max_len=10, seed=s, patience=p)
        for s, p in ((1, 10), (2, 1))
    ]
    whole = fit_packed(configs, data, [tmp_path / f"whole{i}" for i in range(2)])
    assert whole[1].result.epochs < 6 < whole[0].result.epochs  # run 1 stops early
    dirs = [tmp_path / f"cut{i}" for i in range(2)]
    with pytest.raises(Cut):
        fit_packed(configs, data, dirs, on_epoch=cut_after(5, run=0))
    assert all(RunDir(d).status == "running" for d in dirs)
    with caplog.at_level("INFO", logger="bsarec"):
        resumed = fit_packed(configs, data, dirs, resume=True)
    assert "resuming the pack at epoch 6" in caplog.text  # continued, not started anew
    for one, other, path in zip(whole, resumed, dirs, strict=True):
        assert [r["loss"] for r in other.result.history] == [r["loss"] for r in one.result.history]
        assert other.metrics["test"] == one.metrics["test"]
        assert len((path / "history.jsonl").read_text().splitlines()) == one.result.epochs


def test_a_packed_run_cut_off_continues_alone_like_its_unpacked_run(data, tmp_path):
    configs = [RunConfig(model="bsarec", epochs=4, seed=s, **NO_DROPOUT) for s in (1, 2)]
    dirs = [tmp_path / f"cut{i}" for i in range(2)]
    with pytest.raises(Cut):
        fit_packed(configs, data, dirs, on_epoch=cut_after(1))
    alone = SequentialRecommender(config=configs[0]).fit(data, progress=False)
    resumed = SequentialRecommender(config=configs[0]).fit(data, run_dir=dirs[0], resume=True, progress=False)
    for mine, theirs in zip(resumed.result.history, alone.result.history, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
    assert resumed.result.epochs == 4


@pytest.mark.slow
def test_a_pack_without_a_common_checkpoint_starts_anew(data, tmp_path, caplog):
    configs = [RunConfig(model="bsarec", epochs=2, seed=s, **NO_DROPOUT) for s in (1, 2)]
    dirs = [tmp_path / f"run{i}" for i in range(2)]
    with pytest.raises(Cut):
        fit_packed(configs, data, dirs, on_epoch=cut_after(0))
    shutil.rmtree(dirs[1] / "checkpoints")
    with caplog.at_level("INFO", logger="bsarec"):
        fresh = fit_packed(configs, data, dirs, resume=True)
    assert "training them from the start" in caplog.text
    assert [r.result.epochs for r in fresh] == [2, 2]


def test_packed_adam_is_torch_adam_per_run():
    torch.manual_seed(0)
    weights = torch.randn(2, 5)
    params = {"w": weights.clone()}
    adam = PackedAdam(params, [0.1, 0.01], [0.0, 0.5])
    singles = [torch.nn.Parameter(weights[i].clone()) for i in range(2)]
    optimizers = [
        torch.optim.Adam([singles[0]], lr=0.1),
        torch.optim.Adam([singles[1]], lr=0.01, weight_decay=0.5),
    ]
    for step in range(5):
        grads = torch.randn(2, 5)
        active = torch.tensor([True, step < 2])  # run 1 stops after two steps: frozen
        adam.step({"w": grads}, active)
        for i in range(2):
            if bool(active[i]):
                singles[i].grad = grads[i].clone()
                optimizers[i].step()
    for i in range(2):
        assert torch.allclose(params["w"][i], singles[i].detach(), atol=1e-6)


def test_what_cannot_be_packed_is_refused():
    with pytest.raises(ConfigError, match="differ in hidden_size"):
        check_packable([RunConfig(hidden_size=16), RunConfig(hidden_size=32)])
    with pytest.raises(ConfigError, match="gru4rec cannot be packed"):
        check_packable([RunConfig(model="gru4rec")])
    with pytest.raises(ConfigError, match="alpha may differ within a pack for BSARec only"):
        check_packable([RunConfig(model="wearec", alpha=0.2), RunConfig(model="wearec", alpha=0.4)])
    with pytest.raises(ConfigError, match="item features"):
        check_packable([RunConfig(cold_items=0.1)])
    check_packable(
        [RunConfig(seed=1, lr=0.01, c=5), RunConfig(seed=2, alpha=0.3, threads=1, hidden_dropout=0.2)]
    )
