"""RunDir: a run directory's files, its status through a run's life, and clear errors."""

import json

import pytest

from bsarec import SequentialRecommender, generate_synthetic
from bsarec.errors import ConfigError, DataError
from bsarec.run_dir import RunDir

SMALL = {"hidden_size": 16, "max_len": 10, "num_heads": 1, "epochs": 2, "threads": 1}


def test_status_follows_a_run_from_new_to_finished(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.status == "new" and run.newest_checkpoint() is None
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)
    SequentialRecommender("sasrec", **SMALL).fit(data, run_dir=run.path, progress=False)
    assert run.status == "finished"
    for path in (run.config_file, run.metrics_file, run.history_file, run.weights_file, run.log_file):
        assert path.is_file(), path
    assert run.dataset_dir.is_dir() and run.newest_checkpoint().name == "epoch0002-batch000000.json"
    assert run.finished_metrics() == json.loads(run.metrics_file.read_text())
    metrics = run.read_metrics()
    run.write_metrics({**metrics, "interrupted": True})  # as Ctrl-C leaves it
    assert run.status == "interrupted" and run.finished_metrics() is None
    run.metrics_file.unlink()  # as a kill leaves it
    assert run.status == "running" and run.read_metrics() is None


def test_a_missing_or_damaged_file_is_named(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(ConfigError, match=f"{tmp_path}: not a run directory \\(missing config.json\\)"):
        run.read_config()
    run.config_file.write_text("{}")
    with pytest.raises(ConfigError, match="missing model.safetensors"):
        run.require(RunDir.CONFIG, RunDir.WEIGHTS)
    run.config_file.write_text("[1, 2]")
    with pytest.raises(DataError, match="config.json: expected a JSON object"):
        run.read_config()
    run.metrics_file.write_text("{oops")
    with pytest.raises(DataError, match="metrics.json: not valid JSON"):
        run.read_metrics()


def test_a_new_run_never_overwrites_a_run_or_other_files_unless_asked(tmp_path):
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)
    run = RunDir(tmp_path / "run")
    SequentialRecommender("sasrec", **{**SMALL, "epochs": 3}).fit(data, run_dir=run.path, progress=False)
    weights, log = run.weights_file.read_bytes(), run.log_file.read_text()
    with pytest.raises(ConfigError, match="holds a finished run; --overwrite"):
        SequentialRecommender("sasrec", **SMALL).fit(data, run_dir=run.path, progress=False)
    assert run.weights_file.read_bytes() == weights and run.log_file.read_text() == log  # untouched
    # asked to: the old run's files go first, so its later checkpoints cannot take over the new run
    SequentialRecommender("sasrec", **{**SMALL, "epochs": 1}).fit(
        data, run_dir=run.path, progress=False, overwrite=True
    )
    assert sorted(p.name for p in run.checkpoint_dir.iterdir()) == [
        "epoch0001-batch000000.json",
        "epoch0001-batch000000.safetensors",
    ]
    assert run.log_file.read_text().count("training sasrec") == 1 and run.read_metrics()["epochs"] == 1


def test_a_directory_of_other_files_or_a_file_is_never_written_into(tmp_path):
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="not empty and not a run directory \\(it holds notes.txt\\)"):
            SequentialRecommender("sasrec", **SMALL).fit(
                data, run_dir=tmp_path / "mine", progress=False, overwrite=overwrite
            )
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="a file, not a directory"):
        SequentialRecommender("sasrec", **SMALL).fit(data, run_dir=tmp_path / "file", progress=False)
