"""A run is never lost or silently replaced: it is owned by the process that writes it, records what it was
trained on and refuses anything else, is never presented as usable before an epoch was trained, and its
scoring output never replaces the user's files."""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from bsarec import SequentialRecommender, generate_synthetic
from bsarec.cli import app
from bsarec.errors import ConfigError, DataError
from bsarec.io import atomic_write_json
from bsarec.run_dir import RunDir

runner = CliRunner()
SMALL = {"hidden_size": 16, "max_len": 10, "num_heads": 1, "epochs": 1, "threads": 1}


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)


def test_a_run_written_by_another_process_is_not_overwritten(data, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from bsarec.run_dir import RunDir
                with RunDir({str(run)!r}).owned():
                    print("owned", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "owned"
        with pytest.raises(ConfigError, match="another process is writing this run now"):
            SequentialRecommender("sasrec", **SMALL).fit(data, run_dir=run, progress=False, overwrite=True)
    finally:
        holder.kill()
        holder.wait()
    SequentialRecommender("sasrec", **SMALL).fit(data, run_dir=run, progress=False)  # free again
    assert RunDir(run).status == "finished"


def test_overwrite_removes_a_symbolic_link_never_its_target(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    (run / "checkpoints").symlink_to(precious, target_is_directory=True)
    RunDir(run).prepare_new(overwrite=True)
    assert (precious / "keep.txt").read_text() == "mine"
    assert [p.name for p in run.iterdir()] in ([], [RunDir.LOCK])


def test_a_run_checks_its_identity_when_resumed(data, tmp_path):
    run = tmp_path / "run"
    SequentialRecommender("sasrec", **{**SMALL, "epochs": 2}).fit(data, run_dir=run, progress=False)
    (run / "metrics.json").unlink()  # as if killed after its last epoch
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "lr": 0.1}))
    with pytest.raises(
        ConfigError, match=r"config.json: the settings differ .*lr is 0.1, trained with 0.001"
    ):
        SequentialRecommender.resume(run, progress=False)
    (run / "config.json").write_text(json.dumps(config))
    shutil.rmtree(run / "dataset")
    generate_synthetic(n_users=40, n_clusters=4, items_per_cluster=6, max_length=14, seed=9).save(
        run / "dataset"
    )
    with pytest.raises(DataError, match="dataset: not the dataset this run was trained on"):
        SequentialRecommender.resume(run, progress=False)


def test_another_logs_features_with_the_same_count_are_refused(data, tmp_path):
    from bsarec.data.item_features import read_item_features

    (tmp_path / "items.csv").write_text(
        "item,cluster\n" + "".join(f"{i},{i[:3]}\n" for i in data.item_ids[1:])
    )
    features = read_item_features(tmp_path / "items.csv", data)
    run = tmp_path / "run"
    SequentialRecommender("sasrec", **SMALL).fit(data, run_dir=run, progress=False, item_features=features)
    other = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=7)
    other.item_ids[1:] = [f"x{n}" for n in range(len(other.item_ids) - 1)]  # another catalogue, same size
    (tmp_path / "other.csv").write_text(
        "item,cluster\n" + "".join(f"{i},k{n % 2}\n" for n, i in enumerate(other.item_ids[1:]))
    )
    shutil.rmtree(run / "item_features")
    read_item_features(tmp_path / "other.csv", other).save(run / "item_features")
    with pytest.raises(
        DataError, match="item_features: the run's item features are not the ones it was trained"
    ):
        SequentialRecommender.load(run)


def test_a_run_stopped_before_any_trained_epoch_is_not_usable(data, tmp_path, press_ctrl_c):
    run = tmp_path / "run"
    press_ctrl_c(1)  # Ctrl-C in the first validation pass: no epoch was ever validated
    rec = SequentialRecommender("sasrec", **SMALL).fit(data, run_dir=run, progress=False)
    assert rec.metrics["best_epoch"] == -1 and rec.metrics["interrupted"] and "test" not in rec.metrics
    assert not (run / "model.safetensors").exists()  # no random weights saved as if trained
    with pytest.raises(ConfigError, match="no epoch of this run finished training .* --resume"):
        SequentialRecommender.load(run)
    for command in (
        ["evaluate", str(run)],
        ["recommend", str(run), "--items", "x"],
        ["export", str(run), "--format", "torchscript"],
    ):
        assert isinstance(runner.invoke(app, command).exception, ConfigError)
    press_ctrl_c(None)
    resumed = SequentialRecommender.resume(run, progress=False)
    assert resumed.metrics["best_epoch"] == 0 and "test" in resumed.metrics


def test_the_train_command_exits_1_for_an_untrained_run(data, tmp_path, press_ctrl_c):
    data.save(tmp_path / "prepared")
    press_ctrl_c(1)
    args = ["train", "-m", "sasrec", "-d", str(tmp_path / "prepared"), "--epochs", "1", "--no-progress"]
    result = runner.invoke(app, [*args, "--set", "hidden_size=16", "--output", str(tmp_path / "run")])
    assert result.exit_code == 1 and "holds no trained model" in result.output


def test_withholding_every_validation_target_is_refused_before_training(data, tmp_path):
    with pytest.raises(DataError, match="no user is left to validate on .*cold_items 0.95"):
        SequentialRecommender("sasrec", cold_items=0.95, **SMALL).fit(
            data, run_dir=tmp_path / "r", progress=False
        )


def test_json_result_files_hold_null_never_a_bare_nan(tmp_path):
    atomic_write_json(
        tmp_path / "a.json", {"x": float("nan"), "y": [np.float32("inf"), 1.5], "z": np.float64(2)}
    )
    text = (tmp_path / "a.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"x": None, "y": [None, 1.5], "z": 2.0}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--output", "{tmp}/hist.parquet"], "the same file as --input"),
        (["--output", "{tmp}/recs.csv"], "name the file *.parquet"),
        (["--output", "{tmp}/missing/recs.parquet"], "does not exist"),
        (["--output", "{tmp}/adir.parquet"], "a directory"),
    ],
)
def test_batch_scoring_never_replaces_or_hides_a_file(tiny_run, tmp_path, extra, message):
    import polars as pl

    pl.DataFrame({"items": ["c00-i01 c00-i02"]}).write_parquet(tmp_path / "hist.parquet")
    (tmp_path / "adir.parquet").mkdir()
    before = (tmp_path / "hist.parquet").read_bytes()
    args = ["recommend", str(tiny_run), "--input", str(tmp_path / "hist.parquet")]
    result = runner.invoke(app, [*args, *(e.format(tmp=tmp_path) for e in extra)])
    assert isinstance(result.exception, ConfigError) and message in str(result.exception)
    assert (tmp_path / "hist.parquet").read_bytes() == before


def test_output_without_input_is_refused(tiny_run, tmp_path):
    result = runner.invoke(
        app, ["recommend", str(tiny_run), "--user", "1", "--output", str(tmp_path / "r.parquet")]
    )
    assert result.exit_code == 2 and "--output goes with --input" in result.output
