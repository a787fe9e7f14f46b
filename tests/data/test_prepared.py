"""`bsarec data prepare` treats its output as a user's data: it never writes into a directory that holds
anything else, replaces a prepared dataset only when told, and leaves nothing half-written behind an error,
Ctrl-C, SIGTERM or a full disk."""

import errno
import json
import os
import signal

import numpy as np
import pytest
from typer.testing import CliRunner

from bsarec.cli import app
from bsarec.data.dataset import SequenceDataset
from bsarec.data.prepared import save_prepared
from bsarec.errors import ConfigError, DataError

runner = CliRunner()


@pytest.fixture
def log(tmp_path):
    rows = [f"u{u},i{(u + t) % 6},{t}" for u in range(8) for t in range(5)]
    path = tmp_path / "log.csv"
    path.write_text("user,item,ts\n" + "\n".join(rows) + "\n")
    return path


def prepare(log, output, *more):
    return runner.invoke(app, ["data", "prepare", str(log), "--output", str(output), "--kcore", "1", *more])


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_an_existing_prepared_dataset_is_replaced_only_with_overwrite(log, tmp_path):
    assert prepare(log, tmp_path / "p").exit_code == 0
    before = (tmp_path / "p" / "id_maps.json").read_bytes()
    again = prepare(log, tmp_path / "p")
    assert isinstance(again.exception, ConfigError) and "holds a prepared dataset; --overwrite" in str(
        again.exception
    )
    assert prepare(log, tmp_path / "p", "--overwrite").exit_code == 0
    assert (tmp_path / "p" / "id_maps.json").read_bytes() == before and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "occupant",
    [
        {"dataset.json": '{"mine": true}'},  # a user's own file of the same name
        {"config.json": "{}", "model.safetensors": ""},  # a run directory
        {"notes.txt": "keep me"},
    ],
)
def test_a_directory_holding_anything_else_is_never_written_into(log, tmp_path, occupant):
    out = tmp_path / "out"
    out.mkdir()
    for name, text in occupant.items():
        (out / name).write_text(text)
    for extra in ([], ["--overwrite"]):
        result = prepare(log, out, *extra)
        assert isinstance(result.exception, ConfigError) and "not a prepared dataset" in str(result.exception)
    assert sorted(p.name for p in out.iterdir()) == sorted(occupant)
    assert all((out / name).read_text() == text for name, text in occupant.items())


def test_a_features_error_leaves_no_dataset_without_its_features(log, tmp_path):
    (tmp_path / "items.csv").write_text("item,colour\nnobody,red\n")
    result = prepare(log, tmp_path / "p", "--item-features", str(tmp_path / "items.csv"))
    assert isinstance(result.exception, DataError) and "no row names an item" in str(result.exception)
    assert not (tmp_path / "p").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "fault",
    [
        KeyboardInterrupt(),
        OSError(errno.ENOSPC, "No space left on device"),
        "sigterm",
    ],
)
def test_an_interruption_or_a_full_disk_leaves_the_output_as_it_was(tmp_path, monkeypatch, fault):
    data = SequenceDataset([np.array([1, 2, 3])], ["u"], [None, "a", "b", "c"])
    save_prepared(data, None, tmp_path / "p")
    before = {p.name: p.read_bytes() for p in (tmp_path / "p").iterdir()}
    real_save = SequenceDataset.save

    def failing_save(self, directory):
        real_save(self, directory)  # half of the work is on disk when it fails
        if fault == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        raise fault

    monkeypatch.setattr(SequenceDataset, "save", failing_save)
    handler = signal.getsignal(signal.SIGTERM)
    other = SequenceDataset([np.array([1, 2])], ["v"], [None, "x", "y"])
    expected = SystemExit if fault == "sigterm" else type(fault)
    with pytest.raises(expected):
        save_prepared(other, None, tmp_path / "p", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "p").iterdir()} == before
    assert leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == handler  # the process's own handler is back


def test_a_full_disk_is_reported_by_the_command_without_a_traceback(log, tmp_path, monkeypatch, capsys):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "p" / "sequences.npz"))

    monkeypatch.setattr("bsarec.io.os.fsync", no_space)
    monkeypatch.setattr("sys.argv", ["bsarec", "data", "prepare", str(log), "--output", str(tmp_path / "p")])
    from bsarec.cli import main

    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert (
        exit_.value.code == 2 and err.startswith("error: No space left on device") and "Traceback" not in err
    )
    assert not (tmp_path / "p").exists() and leftovers(tmp_path) == []


def test_kcore_below_one_is_refused(log, tmp_path):
    result = prepare(log, tmp_path / "p")
    assert result.exit_code == 0
    bad = runner.invoke(app, ["data", "prepare", str(log), "--output", str(tmp_path / "q"), "--kcore", "-3"])
    assert isinstance(bad.exception, ConfigError) and "kcore: must be an integer >= 1" in str(bad.exception)
    assert json.loads((tmp_path / "p" / "dataset.json").read_text())["users"] == 8
