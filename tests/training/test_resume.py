"""Exact resume: a run killed with SIGKILL at a random point and resumed ends exactly like an uninterrupted one."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from bsarec.data.synthetic import generate_synthetic
from bsarec.run_dir import read_history

SETTINGS = [
    "--set",
    "hidden_size=16",
    "--set",
    "max_len=12",
    "--set",
    "batch_size=64",
    "--set",
    "patience=100",
]


def train_command(dataset, output, model="bsarec", *extra):
    command = [
        sys.executable,
        "-m",
        "bsarec",
        "train",
        "--model",
        model,
        "--dataset",
        str(dataset),
        *SETTINGS,
    ]
    return command + ["--epochs", "8", "--threads", "1", "--no-progress", "--output", str(output), *extra]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "data"
    generate_synthetic(n_users=200, n_clusters=4, items_per_cluster=10, max_length=20, seed=8).save(path)
    return path


@pytest.mark.parametrize("model", ["bsarec", "duorec"])
@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(dataset, tmp_path, model):
    extra = ["--set", "checkpoint_steps=3"]
    subprocess.run(
        train_command(dataset, tmp_path / "straight", model, *extra), check=True, capture_output=True
    )

    killed = tmp_path / "killed"
    process = subprocess.Popen(train_command(dataset, killed, model, *extra), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((killed / "checkpoints").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 0.4))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it was killed"
    resumed = subprocess.run(
        [sys.executable, "-m", "bsarec", "train", "--resume", str(killed), "--threads", "1", "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    position = re.search(r"resuming at epoch (\d+), batch (\d+)", resumed.stderr)
    assert position and (int(position[1]), int(position[2])) != (0, 0), resumed.stderr  # it did continue

    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert a["test"] == b["test"] and a["valid"] == b["valid"] and a["best_epoch"] == b["best_epoch"]
    wa, wb = load_file(tmp_path / "straight" / "model.safetensors"), load_file(killed / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    history, straight = read_history(killed), read_history(tmp_path / "straight")
    assert [r["valid_NDCG@20"] for r in history] == [r["valid_NDCG@20"] for r in straight]
    assert len(os.listdir(killed / "checkpoints")) <= 4  # the last 2 checkpoints, 2 files each, no temp files


@pytest.mark.slow
def test_resume_refuses_a_finished_run_and_a_non_run(dataset, tmp_path):
    from bsarec.api import SequentialRecommender
    from bsarec.errors import ConfigError

    subprocess.run(
        train_command(dataset, tmp_path / "done", "sasrec", "--epochs", "1"), check=True, capture_output=True
    )
    with pytest.raises(ConfigError, match="finished"):
        SequentialRecommender.resume(tmp_path / "done")
    with pytest.raises(ConfigError, match="not a run directory"):
        SequentialRecommender.resume(tmp_path)


@pytest.mark.slow
def test_resume_changes_runtime_settings_only(dataset, tmp_path):
    """A resumed run takes new runtime settings (here: a checkpoint every batch) and refuses any other."""
    from typer.testing import CliRunner

    from bsarec.api import SequentialRecommender
    from bsarec.cli import app
    from bsarec.errors import ConfigError

    run = tmp_path / "run"
    subprocess.run(train_command(dataset, run, "sasrec", "--epochs", "1"), check=True, capture_output=True)
    # turn it into a 2-epoch run cut off after its first epoch: the newest checkpoint is the end of epoch 0
    (run / "metrics.json").unlink()
    config = json.loads((run / "config.json").read_text())
    assert config["checkpoint_steps"] is None
    (run / "config.json").write_text(json.dumps({**config, "epochs": 2}))
    identity = json.loads((run / "identity.json").read_text())  # as a 2-epoch run records it
    identity["settings"]["epochs"] = 2
    (run / "identity.json").write_text(json.dumps(identity))

    with pytest.raises(ConfigError, match="keeps its own lr, seed"):
        SequentialRecommender.resume(run, seed=1, lr=0.1, threads=1)
    cli = CliRunner().invoke(app, ["train", "--resume", str(run), "--seed", "3", "--no-progress"])
    assert isinstance(cli.exception, ConfigError) and "--seed cannot change" in str(cli.exception)
    cli = CliRunner().invoke(app, ["train", "--resume", str(run), "--set", "hidden_size=8", "--no-progress"])
    assert isinstance(cli.exception, ConfigError) and "keeps its own hidden_size" in str(cli.exception)

    cli = CliRunner().invoke(
        app,
        ["train", "--resume", str(run), "--set", "checkpoint_steps=1", "--set", "keep_checkpoints=100"]
        + ["--threads", "1", "--no-progress"],
    )
    assert cli.exit_code == 0, cli.output
    resumed_with = [line for line in (run / "train.log").read_text().splitlines() if "resuming with" in line]
    assert (
        len(resumed_with) == 1
        and "checkpoint_steps=1" in resumed_with[0]
        and "keep_checkpoints=100" in resumed_with[0]
    )
    within_epoch_1 = [p.name for p in (run / "checkpoints").glob("epoch0001-batch*.json")]
    assert len(within_epoch_1) > 1  # batch 0 (from the first run) and one after every batch since
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
