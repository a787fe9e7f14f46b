"""Experiment tracking through the trackers' own clients, read back with their own readers: TensorBoard's event
files with its EventAccumulator, MLflow's runs from a local database with MlflowClient."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("mlflow", reason="needs pip install 'bsarec[track]'")
pytest.importorskip("tensorboard", reason="needs pip install 'bsarec[track]'")
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bsarec import SequentialRecommender, generate_synthetic
from bsarec.errors import ConfigError
from bsarec.experiments import run_benchmark

SMALL = {"hidden_size": 16, "max_len": 10, "num_heads": 1, "epochs": 3, "threads": 1, "patience": 10}


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)


@pytest.mark.slow
def test_a_run_is_logged_to_tensorboard_and_mlflow(data, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = tmp_path / "run"
    rec = SequentialRecommender("sasrec", track="tensorboard,mlflow", track_uri=uri, **SMALL)
    rec.fit(data, run_dir=run, progress=False)

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [0, 1, 2]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in rec.result.history], rel=1e-6)
    assert len(events.Scalars("valid/NDCG@20")) == 3 and len(events.Scalars("train/samples_per_s")) == 3
    assert events.Scalars("test/NDCG@10")[0].value == pytest.approx(rec.metrics["test"]["NDCG@10"], rel=1e-6)
    assert "config" in events.Tags()["tensors"] or "config/text_summary" in events.Tags()["tensors"]

    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "bsarec"]
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "run"
    assert logged.data.params["model"] == "sasrec" and logged.data.params["max_len"] == "10"
    history = client.get_metric_history(logged.info.run_id, "valid/NDCG_at_20")
    assert [m.step for m in history] == [0, 1, 2]
    assert logged.data.metrics["test/NDCG_at_10"] == pytest.approx(rec.metrics["test"]["NDCG@10"])
    assert logged.data.metrics["train/lr"] == 0.001
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"model.safetensors", "config.json", "metrics.json", "history.jsonl"} <= artifacts
    assert json.loads((run / "config.json").read_text())["track"] == "tensorboard,mlflow"


def test_a_grid_groups_its_runs_in_one_experiment(tmp_path):
    prepared = tmp_path / "prepared"
    generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=3).save(prepared)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = {
        "hidden_size": 16,
        "max_len": 10,
        "track": "mlflow",
        "track_uri": uri,
        "track_experiment": "grid-g",
    }
    run_benchmark(
        ["sasrec"],
        [str(prepared)],
        [42, 43],
        runs=tmp_path / "runs",
        preset=None,
        overrides=overrides,
        epochs=1,
    )
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "grid-g"]
    names = sorted(r.info.run_name for r in client.search_runs([experiment.experiment_id]))
    assert names == [f"prepared-sasrec-defaults,hidden_size=16,max_len=10-seed{seed}" for seed in (42, 43)]


@pytest.mark.slow
def test_unknown_trackers_are_refused_and_none_is_imported_unless_asked():
    with pytest.raises(ConfigError, match="track: unknown tracker 'wandb'"):
        SequentialRecommender("sasrec", track="wandb")
    code = (
        "import sys; from bsarec import SequentialRecommender, generate_synthetic; "
        "SequentialRecommender('sasrec', hidden_size=8, max_len=6, epochs=1).fit(generate_synthetic(n_users=20, "
        "n_clusters=2, items_per_cluster=5, max_length=8), progress=False); "
        "print(sorted(m for m in ('mlflow', 'tensorboard', 'torch.utils.tensorboard') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.extras("analysis")
@pytest.mark.slow
def test_a_tuning_study_and_a_cli_grid_log_to_experiments_of_their_own(tmp_path):
    from typer.testing import CliRunner

    from bsarec.cli import app

    prepared = tmp_path / "prepared"
    generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=3).save(prepared)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    small = [
        "--set",
        "hidden_size=16",
        "--set",
        "max_len=10",
        "--set",
        f"track_uri={uri}",
        "--track",
        "mlflow",
    ]
    tune = ["tune", "-m", "sasrec", "-d", str(prepared), "--output", str(tmp_path / "study"), "--trials", "2"]
    result = CliRunner().invoke(app, [*tune, "--epochs", "1", *small])
    assert result.exit_code == 0, result.output
    grid = ["benchmark", "-m", "sasrec", "-d", str(prepared), "--seeds", "42", "--preset", "none"]
    result = CliRunner().invoke(app, [*grid, "--runs", str(tmp_path / "runs"), "--epochs", "1", *small])
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert len(client.search_runs([experiments["tune-sasrec-prepared"]])) == 2  # one run per trial
    (cell,) = client.search_runs([experiments["grid-runs"]])
    assert cell.data.params["seed"] == "42" and "test/NDCG_at_10" in cell.data.metrics
