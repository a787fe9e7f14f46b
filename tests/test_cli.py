import json

import pytest
from typer.testing import CliRunner

from bsarec.cli import app
from bsarec.data.synthetic import generate_synthetic

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
    assert json.loads(result.output)["users"] == 6
    result = runner.invoke(app, ["data", "info", str(tmp_path / "prep")])
    assert result.exit_code == 0 and "interactions     30" in result.output and "sparsity" in result.output


def test_bad_input_gives_a_clear_error_and_exit_code_2(tmp_path):
    (tmp_path / "bad.txt").write_text("1 2 3\n2 0 1\n")
    result = runner.invoke(
        app, ["train", "--dataset", str(tmp_path / "bad.txt"), *FAST], standalone_mode=False
    )
    assert "bad.txt:2" in str(result.exception) and "reserved for padding" in str(result.exception)
    result = runner.invoke(app, ["train", "--set", "bogus=1", *FAST], standalone_mode=False)
    assert "unknown setting" in str(result.exception)


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
