import json

import pytest
from typer.testing import CliRunner

from bsarec.cli import app
from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import ConfigError
from bsarec.tuning.search import load_space

pytestmark = pytest.mark.extras("analysis")

runner = CliRunner()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    path = tmp_path_factory.mktemp("tune") / "data"
    generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=11).save(path)
    return path


def tune_args(prepared, output, trials):
    return ["tune", "--dataset", str(prepared), "--output", str(output), "--trials", str(trials)] + [
        "--set",
        "epochs=2",
        "--set",
        "hidden_size=16",
        "--set",
        "max_len=10",
    ]


@pytest.fixture
def never_test(monkeypatch):
    """Fail the test if anything evaluates the test split; calling the fixture's value lifts the ban."""
    from bsarec import api

    def no_test(self, split="test", *args, **kwargs):
        assert split != "test", "tuning must never evaluate the test split"
        return original(self, split, *args, **kwargs)

    original = api.SequentialRecommender.evaluate
    monkeypatch.setattr(api.SequentialRecommender, "evaluate", no_test)
    return monkeypatch.undo


@pytest.mark.slow
def test_tune_runs_stops_resumes_and_writes_a_preset(prepared, tmp_path, never_test):
    out = tmp_path / "study"
    first = runner.invoke(app, tune_args(prepared, out, 3))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["trials"] == 3
    again = runner.invoke(app, tune_args(prepared, out, 5))  # the same study, continued to 5 trials
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["trials"] == 5
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 6 and {"alpha", "c", "lr", "num_heads"} <= set(rows[0].split(","))
    preset = json.loads((out / "best_preset.json").read_text())
    assert preset["settings"]["c"] in (1, 3, 5, 7, 9) and preset["validation"] == summary["best_value"]
    for name in ("history.png", "alpha_c_heatmap.png"):
        assert (out / name).is_file()
    for trial in (out / "trials").iterdir():
        assert "test" not in json.loads((trial / "metrics.json").read_text())
    never_test()  # the final test run is the user's to make, once, with the preset
    train = runner.invoke(
        app,
        ["train", "--dataset", str(prepared), "--preset", str(out / "best_preset.json"), "--epochs", "1"]
        + [
            "--set",
            "hidden_size=16",
            "--set",
            "max_len=10",
            "--no-progress",
            "--output",
            str(tmp_path / "final"),
        ],
    )
    assert train.exit_code == 0, train.output
    config = json.loads((tmp_path / "final" / "config.json").read_text())
    assert config["c"] == preset["settings"]["c"] and config["alpha"] == pytest.approx(
        preset["settings"]["alpha"]
    )


def test_space_file_is_checked(tmp_path):
    (tmp_path / "space.json").write_text(json.dumps({"alpha": {"low": 0.2, "high": 0.4, "step": 0.1}}))
    assert load_space("bsarec", tmp_path / "space.json") == {"alpha": {"low": 0.2, "high": 0.4, "step": 0.1}}
    (tmp_path / "bad.json").write_text(json.dumps({"gamma": {"choices": [1]}}))
    with pytest.raises(ConfigError, match="gamma"):
        load_space("bsarec", tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text(json.dumps({"alpha": [0.1]}))
    with pytest.raises(ConfigError, match="choices"):
        load_space("bsarec", tmp_path / "bad2.json")


def test_tune_takes_epochs_as_train_does(prepared, tmp_path):
    out = tmp_path / "study"
    args = ["tune", "--dataset", str(prepared), "--output", str(out), "--trials", "1", "--epochs", "1"]
    result = runner.invoke(app, [*args, "--set", "hidden_size=16", "--set", "max_len=10"])
    assert result.exit_code == 0, result.output
    (trial,) = (out / "trials").iterdir()
    assert json.loads((trial / "config.json").read_text())["epochs"] == 1
    assert json.loads((trial / "metrics.json").read_text())["epochs"] == 1


def test_a_diverged_trial_fails_instead_of_winning(prepared, tmp_path):
    (tmp_path / "space.json").write_text(json.dumps({"lr": {"choices": [1e30]}}))
    out = tmp_path / "study"
    args = ["tune", "--dataset", str(prepared), "--output", str(out), "--trials", "1", "--epochs", "2"]
    args += ["--space", str(tmp_path / "space.json"), "--set", "hidden_size=16", "--set", "max_len=10"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["complete"] == 0 and "best_value" not in summary
    assert ",FAIL," in (out / "trials.csv").read_text()


@pytest.mark.slow
def test_tune_packs_trials_and_never_evaluates_test(prepared, tmp_path, never_test):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"alpha": {"choices": [0.3, 0.7]}, "lr": {"choices": [0.001, 0.003]}}))
    out = tmp_path / "packed"
    result = runner.invoke(app, [*tune_args(prepared, out, 5), "--space", str(space), "--pack", "3"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["trials"] == 5 and summary["complete"] >= 1  # asked 3 + 2, trained as two packs
    assert len(list((out / "trials").iterdir())) == 5
    refused = runner.invoke(app, [*tune_args(prepared, tmp_path / "mixed", 2), "--pack", "2"])
    assert isinstance(refused.exception, ConfigError) and "num_heads" in str(refused.exception)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"lr": {"low": 0.01, "high": 0.001}}, "low < high"),
        ({"lr": {"low": 0.0, "high": 0.01, "log": True}}, "a log range must start above 0"),
        ({"c": {"choices": []}}, "'choices' must be a non-empty list"),
        ({"alpha": {"low": 0.1, "high": 1.5}}, "the value 1.5 is not a valid setting"),
        ({"num_basis": {"choices": [8]}}, "num_basis: bsarec does not use it"),
        ({"alpha": {"low": 0.1, "high": 0.9, "step": 2}}, "step 2 must be"),
        ({}, "expected a JSON object of settings"),
    ],
)
def test_a_search_space_is_checked_whole_before_any_trial(prepared, tmp_path, spec, message):
    (tmp_path / "space.json").write_text(json.dumps(spec))
    out = tmp_path / "study"
    result = runner.invoke(app, [*tune_args(prepared, out, 2), "--space", str(tmp_path / "space.json")])
    assert isinstance(result.exception, ConfigError) and message in str(result.exception), result.output
    assert not (out / "trials").exists()  # refused before the first trial
