"""benchmarks/park_runs.py: an unfinished cell packed into one archive, the runs tree wiped, and the cell
restored and continued ends exactly like the uninterrupted run."""

import importlib.util
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from bsarec.cli import app
from tests.test_cli import small_sasrec_grid

runner = CliRunner()
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "park_runs.py"


def load_script():
    spec = importlib.util.spec_from_file_location("park_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_parked_cell_restored_on_a_wiped_runs_tree_ends_like_the_uninterrupted_run(tmp_path):
    park_runs = load_script()
    args = small_sasrec_grid(tmp_path, seeds="1", epochs=3)
    assert runner.invoke(app, args).exit_code == 0
    runs, parked = tmp_path / "runs", tmp_path / "parked"
    run = next(runs.rglob("metrics.json")).parent
    finished = json.loads((run / "metrics.json").read_text())
    # cut the run off after epoch 2, as a session's end would
    (run / "metrics.json").unlink()
    for path in (run / "checkpoints").glob("epoch0003*"):
        path.unlink()
    park_runs.park(runs, parked)
    archive = parked / f"{park_runs.cell_name(run, runs)}.tar.gz"
    assert sorted(parked.iterdir()) == [archive]
    shutil.rmtree(runs)  # the next session's checkout has no runs tree
    park_runs.restore(parked, runs)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch0002-batch000000.json",
        "epoch0002-batch000000.safetensors",
    ]  # the newest checkpoint only
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "1 cells, 0 finished, 1 to run" in again.output
    assert "resuming at epoch 2, batch 0" in (run / "train.log").read_text()  # continued, not restarted
    assert json.loads((run / "metrics.json").read_text())["test"] == finished["test"]
    park_runs.restore(parked, runs)  # a finished cell is left alone ...
    assert (run / "metrics.json").is_file()
    park_runs.park(runs, parked)  # ... and its archive goes
    assert list(parked.iterdir()) == []
