import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bsarec.cli import app
from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import ConfigError, DataError
from bsarec.experiments.cells import cell_key
from bsarec.extras import EXTRAS
from bsarec.models import MODELS, model_parameters

runner = CliRunner()
FAST = [
    "--set",
    "hidden_size=16",
    "--set",
    "max_len=10",
    "--set",
    "num_heads=1",
    "--epochs",
    "2",
    "--no-progress",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = generate_synthetic(n_users=60, n_clusters=4, items_per_cluster=10, max_length=20)
    data.save(root / "prepared")
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "bsarec",
            "--dataset",
            str(root / "prepared"),
            *FAST,
            "--output",
            str(root / "run"),
        ],
    )
    assert result.exit_code == 0, result.output
    return root / "run"


def test_train_writes_a_complete_run(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR"}
    assert metrics["epochs"] == 2
    for name in ("config.json", "history.jsonl", "model.safetensors", "train.log", "dataset/id_maps.json"):
        assert (run_dir / name).is_file(), name


def test_evaluate_recomputes_the_metrics(run_dir):
    result = runner.invoke(app, ["evaluate", str(run_dir), "--split", "test"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert json.loads(result.output) == pytest.approx(saved)
    result = runner.invoke(app, ["evaluate", str(run_dir), "--split", "valid", "--history-mask", "zero"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)) == set(saved)


def test_recommend_for_items_and_user(run_dir):
    result = runner.invoke(app, ["recommend", str(run_dir), "--items", "c00-i01 c00-i02 bogus", "-k", "4"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 4 and all(line.split()[1].startswith("c0") for line in lines)
    assert "bogus" in result.stderr and "c00-i01" not in " ".join(line.split()[1] for line in lines)
    result = runner.invoke(app, ["recommend", str(run_dir), "--user", "u00003", "-k", "3"])
    assert result.exit_code == 0 and len(result.stdout.strip().splitlines()) == 3
    result = runner.invoke(app, ["recommend", str(run_dir), "--user", "nobody"])
    assert result.exit_code == 0 and "unknown user" in result.stderr and "empty history" in result.stderr
    assert len(result.stdout.strip().splitlines()) == 10


def test_recommend_scores_a_file_of_histories(run_dir, tmp_path):
    (tmp_path / "h.csv").write_text("id,items\nr1,c00-i01 c00-i02\nr2,\n")
    out = tmp_path / "recs.parquet"
    args = ["recommend", str(run_dir), "--input", str(tmp_path / "h.csv"), "--output", str(out), "-k", "5"]
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["histories"] == 2
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist()
    assert [r["id"] for r in rows] == ["r1", "r2"] and len(rows[0]["items"]) == 5
    missing = runner.invoke(app, ["recommend", str(run_dir), "--input", str(tmp_path / "h.csv")])
    assert missing.exit_code != 0 and "--output" in missing.output


def test_sasrec_trains_from_a_benchmark_file(tmp_path):
    text = "\n".join(f"{u} " + " ".join(str((u + t) % 15 + 1) for t in range(8)) for u in range(1, 30)) + "\n"
    (tmp_path / "Tiny.txt").write_text(text)
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "sasrec",
            "--dataset",
            str(tmp_path / "Tiny.txt"),
            *FAST,
            "--output",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["loss"] == "bce"


def test_data_info_and_prepare(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(
        "user_id,item_id,timestamp\n"
        + "".join(f"u{u},i{(u + t) % 4},{t}\n" for u in range(6) for t in range(5))
    )
    result = runner.invoke(
        app, ["data", "prepare", str(log), "--output", str(tmp_path / "prep"), "--kcore", "2"]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"users\s+6\n", result.stdout) and "prepared in" in result.stdout  # a readable summary
    result = runner.invoke(app, ["data", "info", str(tmp_path / "prep")])
    assert (
        result.exit_code == 0
        and re.search(r"interactions\s+30\n", result.output)
        and "sparsity" in result.output
    )
    assert "how it was read:" in result.output and "{" not in result.output  # no raw JSON
    as_json = runner.invoke(app, ["data", "info", str(tmp_path / "prep"), "--json"])
    assert json.loads(as_json.stdout)["interactions"] == 30


def test_bad_input_gives_a_clear_error_and_exit_code_2(tmp_path):
    (tmp_path / "bad.txt").write_text("1 2 3\n2 0 1\n")
    result = runner.invoke(
        app, ["train", "--dataset", str(tmp_path / "bad.txt"), *FAST], standalone_mode=False
    )
    assert "bad.txt:2" in str(result.exception) and "reserved for padding" in str(result.exception)
    result = runner.invoke(app, ["train", "--set", "bogus=1", *FAST], standalone_mode=False)
    assert "unknown setting" in str(result.exception)


@pytest.mark.slow
def test_console_entry_point_exit_code(tmp_path):
    import subprocess
    import sys

    (tmp_path / "bad.txt").write_text("1 2 3\n1 4 5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "bsarec", "data", "info", str(tmp_path / "bad.txt")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "bad.txt:2: duplicate line for user 1" in proc.stderr


@pytest.mark.parametrize("model", [m for m in MODELS if m != "bsarec"])
def test_every_model_trains_through_the_cli_and_recommends(tmp_path, model):
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=1)
    data.save(tmp_path / "prepared")
    out = tmp_path / "run"
    # the short options, as benchmark has them
    fast = FAST if "num_heads" in model_parameters(model) else [a for a in FAST if a != "num_heads=1"]
    fast = [a for i, a in enumerate(fast) if not (a == "--set" and fast[i + 1].startswith("--"))]
    args = ["train", "-m", model, "-d", str(tmp_path / "prepared"), "--preset", "paper", *fast]
    result = runner.invoke(app, [*args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == model and config["max_len"] == 10
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == {
        "candidates": "full",
        "history_mask": "exclude",
        "padding": "zeros",
        "monitor": "NDCG@20",
    }
    result = runner.invoke(app, ["recommend", str(out), "--user", data.user_ids[0], "-k", "3"])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 3


def test_switchboard_options_reach_the_run(tmp_path):
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)
    data.save(tmp_path / "prepared")
    out = tmp_path / "run"
    switches = ["padding=cyclic", "candidates=sampled-uniform", "eval_negatives=9", "monitor=HR@10"]
    sets = [x for s in switches for x in ("--set", s)]
    args = ["train", "--dataset", str(tmp_path / "prepared"), *FAST, *sets, "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"]["candidates"] == "sampled-uniform-9"
    assert metrics["protocol"]["padding"] == "cyclic" and metrics["protocol"]["monitor"] == "HR@10"
    assert metrics["test"]["HR@10"] == 1.0  # 1 target + 9 negatives: it is always in the top 10
    full = runner.invoke(app, ["evaluate", str(out), "--candidates", "full"])
    assert full.exit_code == 0, full.output
    assert json.loads(full.output)["HR@10"] < 1.0


def test_benchmark_runs_a_grid_resumes_and_checks_settings(tmp_path):
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=3)
    data.save(tmp_path / "prepared")
    args = [
        "benchmark",
        "-m",
        "bsarec,sasrec",
        "-d",
        str(tmp_path / "prepared"),
        "--seeds",
        "1,2",
        "--runs",
        str(tmp_path / "runs"),
        "--preset",
        "none",
        "--epochs",
        "1",
        "--set",
        "hidden_size=16",
        "--set",
        "max_len=10",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "4 cells, 0 finished, 4 to run" in first.output
    rows = (tmp_path / "runs" / "results.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("dataset,model,seed,HR@5")
    table = (tmp_path / "runs" / "table.md").read_text()
    assert "| metric | BSARec | SASRec | Improv. vs best baseline |" in table
    assert "hidden_size=16" in table  # the overrides are in the caption
    results = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert results["significance"][next(iter(results["summary"]))]["sasrec"]["seeds"] == [1, 2]
    weights = sorted((tmp_path / "runs").rglob("model.safetensors"))
    stamps = [w.stat().st_mtime_ns for w in weights]
    older = json.loads((weights[0].parent / "config.json").read_text())
    del older["softmax_negatives"], older["softmax_sampler"]  # as written before these settings existed
    del older["flush_denormal"]
    (weights[0].parent / "config.json").write_text(json.dumps(older))
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "4 cells, 4 finished, 0 to run" in again.output
    runtime_only = runner.invoke(app, [*args, "--set", "flush_denormal=false"])  # how, not what: reused
    assert runtime_only.exit_code == 0 and "4 cells, 4 finished, 0 to run" in runtime_only.output
    assert [w.stat().st_mtime_ns for w in weights] == stamps  # nothing retrained
    changed = runner.invoke(
        app, [*args[:-6], "--epochs", "2", *args[-4:]]
    )  # same cells, other settings: refused
    assert isinstance(changed.exception, ConfigError) and "other settings" in str(changed.exception)


def small_sasrec_grid(tmp_path, seeds: str, epochs: int) -> list[str]:
    """`bsarec benchmark` arguments for a tiny SASRec grid on synthetic data saved to tmp_path/prepared."""
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=9)
    data.save(tmp_path / "prepared")
    args = ["benchmark", "-m", "sasrec", "-d", str(tmp_path / "prepared"), "--runs", str(tmp_path / "runs")]
    args += ["--seeds", seeds, "--preset", "none", "--epochs", str(epochs)]
    return args + ["--set", "hidden_size=16", "--set", "max_len=10"]


def test_benchmark_continues_a_cell_cut_off_midway(tmp_path):
    from bsarec.experiments.cells import Cell
    from bsarec.experiments.grid import run_cell

    args = small_sasrec_grid(tmp_path, seeds="1", epochs=3)
    assert runner.invoke(app, args).exit_code == 0
    run = next((tmp_path / "runs").rglob("metrics.json")).parent
    finished = json.loads((run / "metrics.json").read_text())
    # pretend the run was cut off after epoch 2: drop its results and all but the first two epoch checkpoints
    (run / "metrics.json").unlink()
    for path in sorted((run / "checkpoints").glob("epoch0003*")):
        path.unlink()
    job = {"cell": Cell("sasrec", str(tmp_path / "prepared"), 1).__dict__, "run_dir": str(run)}
    job["config"] = json.loads((run / "config.json").read_text())
    older = {
        k: v for k, v in job["config"].items() if k != "softmax_negatives"
    }  # written by an older version
    (run / "config.json").write_text(json.dumps(older))
    job["config"].update(checkpoint_steps=1, keep_checkpoints=100)  # runtime settings of the re-run grid
    assert run_cell(job) == finished["test"]  # continued from epoch 2, same result as the uninterrupted run
    history = (run / "history.jsonl").read_text().splitlines()
    assert len(history) == 3
    assert "resuming at epoch 2, batch 0" in (run / "train.log").read_text()  # continued, not restarted
    assert len(list((run / "checkpoints").glob("epoch0002-batch*.json"))) > 1  # the grid's checkpoint_steps


def test_benchmark_keeps_the_cells_its_results_file_records_when_run_directories_are_gone(tmp_path):
    import shutil

    from bsarec.errors import DataError

    output = tmp_path / "results"

    def grid(seeds: str, epochs: int = 1) -> list[str]:
        return [*small_sasrec_grid(tmp_path, seeds, epochs), "--output", str(output)]

    args = grid("1,2")
    assert runner.invoke(app, args).exit_code == 0
    first = json.loads((output / "results.json").read_text())
    assert sorted(first["configs"]) == sorted(cell_key(r["run_dir"]) for r in first["per_seed"])
    shutil.rmtree(tmp_path / "runs")  # a wiped scratch disk: only the results file is left
    wider = grid("1,2,3")  # one more seed
    again = runner.invoke(app, wider)
    assert again.exit_code == 0, again.output
    assert "3 cells, 2 finished, 1 to run" in again.output  # seeds 1 and 2 are not trained again
    after = json.loads((output / "results.json").read_text())
    assert [r["seed"] for r in after["per_seed"]] == [1, 2, 3]
    assert after["per_seed"][:2] == first["per_seed"]  # the recorded rows, unchanged
    assert after["summary"][first["per_seed"][0]["dataset"]]["sasrec"]["HR@10"]["n"] == 3
    assert sorted((tmp_path / "runs").rglob("metrics.json")) == [
        tmp_path / "runs" / cell_key(after["per_seed"][2]["run_dir"]) / "metrics.json"
    ]
    other = runner.invoke(app, grid("1,2,3", epochs=2))  # same cells, other settings
    assert isinstance(other.exception, ConfigError)
    assert str(output / "results.json") in str(other.exception) and "other settings" in str(other.exception)
    older = {k: v for k, v in after.items() if k != "configs"}  # written before settings were recorded
    (output / "results.json").write_text(json.dumps(older))
    assert "3 cells, 3 finished, 0 to run" in runner.invoke(app, wider).output
    (output / "results.json").write_text(json.dumps({"per_seed": [{"model": "sasrec"}]}))
    broken = runner.invoke(app, wider)
    assert isinstance(broken.exception, DataError)
    assert "results.json: per_seed[0] lacks dataset, seed, run_dir" in str(broken.exception)


@pytest.mark.slow
def test_benchmark_leaves_out_and_continues_a_cell_stopped_by_ctrl_c(tmp_path, press_ctrl_c):
    args = small_sasrec_grid(tmp_path, seeds="1", epochs=3)
    straight = [str(tmp_path / "straight") if a == str(tmp_path / "runs") else a for a in args]
    assert runner.invoke(app, straight).exit_code == 0
    expected = json.loads(next((tmp_path / "straight").rglob("metrics.json")).read_text())["test"]
    press_ctrl_c(3)
    assert runner.invoke(app, args).exit_code == 0
    press_ctrl_c(None)
    run = next((tmp_path / "runs").rglob("metrics.json")).parent
    assert json.loads((run / "metrics.json").read_text())["interrupted"] is True
    assert len((tmp_path / "runs" / "results.csv").read_text().splitlines()) <= 1  # no row for it
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "1 cells, 0 finished, 1 to run" in again.output
    assert "resuming at epoch 2, batch 0" in (run / "train.log").read_text()
    assert json.loads((run / "metrics.json").read_text())["test"] == expected  # as if never stopped
    assert len((tmp_path / "runs" / "results.csv").read_text().splitlines()) == 2


def test_benchmark_skips_a_cell_another_process_is_training(tmp_path):
    import subprocess
    import sys

    from bsarec.experiments.cells import Cell, protocol_tag
    from bsarec.experiments.grid import lock_file_of, run_cell

    args = small_sasrec_grid(tmp_path, seeds="1,2", epochs=2)
    tag = protocol_tag({"hidden_size": 16, "max_len": 10}, preset=None)
    cell_dirs = [tmp_path / "runs" / "prepared" / "sasrec" / tag / f"seed{s}" for s in (1, 2)]
    busy = cell_dirs[0]
    busy.mkdir(parents=True)
    (busy / "train.log").write_text("written by the other process\n")  # a start without a checkpoint yet
    hold_the_lock = (
        "import sys, filelock; held = filelock.FileLock(sys.argv[1]); held.acquire(); print(1); input()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold_the_lock, str(lock_file_of(busy))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "1"  # the other process holds the cell's lock
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "2 cells, 0 finished, 2 to run" in result.output
        assert "left to the processes training them now" in result.output
        assert f"sasrec {tmp_path / 'prepared'} seed 1" in result.output
        assert (cell_dirs[1] / "metrics.json").is_file()  # the free cell trained
        assert (busy / "train.log").read_text() == "written by the other process\n"  # still there, untouched
        assert not (busy / "metrics.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing anything: the OS dropped its lock, so the cell runs now
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "2 cells, 1 finished, 1 to run" in again.output
    assert "left to the processes" not in again.output
    assert (busy / "metrics.json").is_file()
    # a cell finished by another process after this one planned the grid is read back, not trained again
    stamp = (busy / "model.safetensors").stat().st_mtime_ns
    job = {"cell": Cell("sasrec", str(tmp_path / "prepared"), 1).__dict__, "run_dir": str(busy)}
    job["config"] = json.loads((busy / "config.json").read_text())
    assert run_cell(job) == json.loads((busy / "metrics.json").read_text())["test"]
    assert (busy / "model.safetensors").stat().st_mtime_ns == stamp


def test_data_prepare_reads_a_tab_separated_file_named_csv(tmp_path):
    rows = ["user_id\titem_id\ttime"] + [f"u{u}\ti{(u + t) % 7}\t{t}" for u in range(12) for t in range(6)]
    (tmp_path / "events.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(
        app, ["data", "prepare", str(tmp_path / "events.csv"), "--output", str(tmp_path / "p"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["users"] == 12
    explicit = [
        "data",
        "prepare",
        str(tmp_path / "events.csv"),
        "--output",
        str(tmp_path / "q"),
        "--separator",
    ]
    assert runner.invoke(app, [*explicit, "tab"]).exit_code == 0
    wrong = runner.invoke(app, [*explicit[:-2], str(tmp_path / "r"), "--separator", ";"])
    assert isinstance(wrong.exception, DataError) and "cannot find the user column" in str(wrong.exception)


@pytest.mark.parametrize(
    ("command", "module", "extra"),
    [
        (["analyze", "somewhere"], "matplotlib", "analysis"),
        (["tune", "--trials", "1"], "optuna", "analysis"),
        (["serve", "somewhere"], "fastapi", "serve"),
        (["export", "somewhere", "--format", "onnx"], "onnx", "export"),
    ],
)
def test_a_command_whose_extra_is_missing_names_the_extra(monkeypatch, command, module, extra):
    import sys

    from bsarec.errors import MissingExtra

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it raises ImportError
    result = runner.invoke(app, command)
    assert isinstance(result.exception, MissingExtra)
    assert f"pip install 'bsarec[{extra}]'" in str(result.exception)
    assert any(name in str(result.exception) for name in EXTRAS[extra])  # the first of its modules missing


def test_speed_refuses_an_unknown_model_before_measuring():
    result = runner.invoke(app, ["speed", "--model", "nosuchmodel", "--dataset", "synthetic"])
    assert isinstance(result.exception, ConfigError) and "nosuchmodel" in str(result.exception)


def test_train_output_refuses_an_existing_run_unless_overwrite(run_dir):
    args = ["train", "--dataset", "synthetic", "--epochs", "1", "--no-progress", "--output", str(run_dir)]
    args += ["--set", "hidden_size=16", "--set", "max_len=10"]
    refused = runner.invoke(app, args)
    assert isinstance(refused.exception, ConfigError) and "--overwrite" in str(refused.exception)
    resumed = runner.invoke(app, ["train", "--resume", str(run_dir), "--overwrite"])
    assert isinstance(resumed.exception, ConfigError) and "--overwrite cannot change" in str(
        resumed.exception
    )


@pytest.mark.parametrize(
    ("option", "value"), [("--split", "train"), ("--candidates", "some"), ("--history-mask", "hide")]
)
def test_evaluate_names_a_bad_option(run_dir, option, value):
    result = runner.invoke(app, ["evaluate", str(run_dir), option, value])
    assert isinstance(result.exception, ConfigError) and repr(value) in str(result.exception)


@pytest.mark.extras("serve")
def test_serve_refuses_a_damaged_run_before_starting(run_dir, tmp_path):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(run_dir, damaged)
    (damaged / "model.safetensors").write_bytes(b"not weights")
    result = runner.invoke(app, ["serve", str(damaged)])
    assert isinstance(result.exception, DataError) and "model.safetensors" in str(result.exception)


@pytest.mark.slow
def test_a_redirected_training_log_has_plain_lines_and_no_carriage_returns(tmp_path):
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=1)
    data.save(tmp_path / "prepared")
    with open(tmp_path / "train.log", "w") as log:  # not a terminal: no bar, even without --no-progress
        proc = subprocess.run(
            [sys.executable, "-m", "bsarec", "train", "-m", "sasrec", "-d", str(tmp_path / "prepared")]
            + [
                "--set",
                "hidden_size=16",
                "--set",
                "max_len=10",
                "--epochs",
                "2",
                "--output",
                str(tmp_path / "run"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    text = (tmp_path / "train.log").read_text()
    assert proc.returncode == 0, text
    assert "\r" not in text and "epoch 0 loss" in text and "epoch 1 loss" in text


def test_a_long_epoch_without_a_bar_reports_every_interval(monkeypatch, caplog, tmp_path):
    from bsarec import SequentialRecommender
    from bsarec.training import trainer

    monkeypatch.setattr(trainer, "REPORT_SECONDS", 0.0)  # every batch counts as a long wait
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=1)
    with caplog.at_level("INFO", logger="bsarec"):
        SequentialRecommender("sasrec", hidden_size=16, max_len=10, epochs=1, batch_size=64).fit(
            data, progress=False
        )
    lines = [r.getMessage() for r in caplog.records if "batches, loss" in r.getMessage()]
    assert lines and lines[0].startswith("epoch 0: 1 of ") and "samples/s" in lines[0]
