"""Faults get an error of ours and leave no partial artifact: a full disk (an injected ENOSPC) while training,
scoring a file or exporting; damaged, edited or foreign checkpoints on resume; requests the service cannot
answer as asked."""

import errno
import json
import shutil

import polars as pl
import pytest
import torch

from bsarec import SequentialRecommender, generate_synthetic
from bsarec.errors import ConfigError, DataError
from bsarec.serving.batch import score_file
from bsarec.serving.export import export_run

SMALL = {"hidden_size": 16, "max_len": 10, "num_heads": 1, "threads": 1}


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def partial_files(directory):
    return [p.name for p in directory.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name]


@pytest.fixture(autouse=True)
def ieee_floats():
    """The service sets the process's denormal mode for its worker; later tests (Hypothesis) need IEEE floats."""
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)


def test_a_full_disk_while_training_raises_and_leaves_no_half_written_file(data, tmp_path, monkeypatch):
    monkeypatch.setattr("bsarec.io.os.fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        SequentialRecommender("sasrec", epochs=1, **SMALL).fit(data, run_dir=tmp_path / "run", progress=False)
    assert partial_files(tmp_path) == [] and not (tmp_path / "run" / "config.json").exists()


def test_a_full_disk_while_scoring_leaves_no_output(tiny_run, tmp_path, monkeypatch):
    pl.DataFrame({"items": ["c00-i01 c00-i02"] * 3}).write_parquet(tmp_path / "hist.parquet")
    rec = SequentialRecommender.load(tiny_run)
    monkeypatch.setattr("pyarrow.parquet.ParquetWriter.write_table", no_space)
    with pytest.raises(OSError, match="No space left"):
        score_file(rec, tmp_path / "hist.parquet", tmp_path / "out.parquet", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hist.parquet"]


def test_a_full_disk_while_exporting_leaves_no_partial_export(tiny_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = sorted(p.name for p in run.iterdir())
    monkeypatch.setattr(torch.jit.ScriptModule, "save", no_space)
    with pytest.raises(OSError, match="No space left"):
        export_run(run, "torchscript")
    assert sorted(p.name for p in run.iterdir()) == before
    monkeypatch.setattr(
        "bsarec.serving.export.shutil.disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 1024)
    )
    with pytest.raises(ConfigError, match="MiB free on its disk, the export needs about"):
        export_run(run, "torchscript")
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.fixture
def stopped_run(data, tmp_path):
    """A 2-epoch run killed after its first epoch: its newest checkpoint is the end of epoch 0."""
    run = tmp_path / "run"
    SequentialRecommender("sasrec", epochs=1, keep_checkpoints=3, **SMALL).fit(
        data, run_dir=run, progress=False
    )
    (run / "metrics.json").unlink()
    for name in ("config.json", "identity.json"):
        values = json.loads((run / name).read_text())
        (values.get("settings", values))["epochs"] = 2
        (run / name).write_text(json.dumps(values))
    return run


def test_a_damaged_checkpoint_manifest_is_named_and_the_one_before_used(stopped_run, caplog):
    (newest,) = sorted((stopped_run / "checkpoints").glob("*.json"))[-1:]
    (newest.with_name("epoch0000-batch000001.json")).write_text(newest.read_text())  # an older, good one
    shutil.copy(newest.with_suffix(".safetensors"), newest.with_name("epoch0000-batch000001.safetensors"))
    state = json.loads(newest.read_text())
    state["batch"] = 1
    newest.with_name("epoch0000-batch000001.json").write_text(json.dumps(state))
    newest.write_text("{not json")
    with pytest.raises(DataError, match="epoch0000-batch000001.json: its position"):
        SequentialRecommender.resume(stopped_run, progress=False)
    assert f"checkpoint {newest} is damaged" in caplog.text


def test_an_edited_checkpoint_position_is_refused(stopped_run):
    (newest,) = sorted((stopped_run / "checkpoints").glob("*.json"))[-1:]
    state = json.loads(newest.read_text())
    newest.write_text(json.dumps({**state, "epoch": 999}))
    with pytest.raises(DataError, match=r"its position \(epoch 999, .* does not match its name"):
        SequentialRecommender.resume(stopped_run, progress=False)


def test_a_foreign_checkpoint_is_refused_with_its_file_named(stopped_run, data, tmp_path):
    other = tmp_path / "other"
    SequentialRecommender("bsarec", epochs=1, **SMALL).fit(data, run_dir=other, progress=False)
    (newest,) = sorted((stopped_run / "checkpoints").glob("*.safetensors"))[-1:]
    (foreign,) = sorted((other / "checkpoints").glob("*.safetensors"))[-1:]
    shutil.copy(foreign, newest)
    with pytest.raises(DataError, match=r"epoch0001-batch000000.json: not a checkpoint of this run"):
        SequentialRecommender.resume(stopped_run, progress=False)


@pytest.fixture(scope="module")
def featured_run(tmp_path_factory, data):
    from bsarec.data.item_features import read_item_features

    root = tmp_path_factory.mktemp("featured")
    (root / "items.csv").write_text("item,cluster\n" + "".join(f"{i},{i[:3]}\n" for i in data.item_ids[1:]))
    features = read_item_features(root / "items.csv", data)
    SequentialRecommender("sasrec", epochs=1, **SMALL).fit(
        data, run_dir=root / "run", progress=False, item_features=features
    )
    return root / "run"


@pytest.mark.extras("serve")
def test_requests_that_cannot_be_answered_as_asked_get_a_422_with_the_reason(featured_run):
    from fastapi.testclient import TestClient

    from bsarec.serving.app import create_app

    client = TestClient(create_app(featured_run, threads=None))
    misspelled = client.post("/recommend", json={"items": ["c00-i01"], "wher": {"cluster": ["c01"]}})
    assert misspelled.status_code == 422 and "wher" in misspelled.text
    empty_allow = client.post("/recommend", json={"items": ["c00-i01"], "allow": []})
    assert empty_allow.status_code == 422 and "allows no item" in empty_allow.text
    disjoint = client.post(
        "/recommend", json={"items": ["c00-i01"], "where": {"cluster": ["c01"]}, "allow": ["c00-i02"]}
    )
    assert disjoint.status_code == 422 and "none of the allowed items holds" in disjoint.text
    batch = client.post("/recommend/batch", json={"histories": [["c00-i01"]], "k": 3, "extra": 1})
    assert batch.status_code == 422
    good = client.post("/recommend", json={"items": ["c00-i01"], "where": {"cluster": ["c01"]}, "k": 3})
    assert good.status_code == 200 and all(i.startswith("c01") for i in good.json()["items"])


@pytest.mark.extras("serve")
def test_health_says_not_ready_when_the_model_cannot_score(tiny_run, monkeypatch):
    from fastapi.testclient import TestClient

    from bsarec.serving import app as service
    from bsarec.serving.app import create_app

    broken = SequentialRecommender.load(tiny_run)
    with torch.no_grad():
        broken.model.item_embeddings[3] = float("nan")
    monkeypatch.setattr(service.SequentialRecommender, "load", classmethod(lambda cls, *a, **k: broken))
    client = TestClient(create_app(tiny_run, threads=None))
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "not ready"
    assert "1 items have NaN or infinite vectors" in health.json()["reason"]
    assert client.post("/recommend", json={"items": []}).status_code == 503
    assert TestClient(create_app(tiny_run, threads=None)).get("/health").status_code == 503
    monkeypatch.undo()
    assert TestClient(create_app(tiny_run, threads=None)).get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize("command", ["train", "recommend", "export"])
def test_the_commands_report_a_full_disk_in_one_line(tiny_run, data, tmp_path, monkeypatch, capsys, command):
    from bsarec.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    data.save(tmp_path / "prepared")
    pl.DataFrame({"items": ["c00-i01"]}).write_parquet(tmp_path / "hist.parquet")
    argv = {
        "train": [
            "train",
            "-d",
            str(tmp_path / "prepared"),
            "--epochs",
            "1",
            "--output",
            str(tmp_path / "new"),
        ],
        "recommend": [
            "recommend",
            str(run),
            "--input",
            str(tmp_path / "hist.parquet"),
            "--output",
            str(tmp_path / "r.parquet"),
        ],
        "export": ["export", str(run), "--format", "torchscript"],
    }[command]
    monkeypatch.setattr("bsarec.io.os.fsync", no_space)
    monkeypatch.setattr("pyarrow.parquet.ParquetWriter.write_table", no_space)
    monkeypatch.setattr(torch.jit.ScriptModule, "save", no_space)
    monkeypatch.setattr(
        "sys.argv", ["bsarec", *argv, "--no-progress"] if command != "export" else ["bsarec", *argv]
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "error: No space left on device" in err and "Traceback" not in err
    assert partial_files(tmp_path) == [] and not (tmp_path / "r.parquet").exists()
