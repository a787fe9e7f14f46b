"""`bsarec demo`, the main job of `make demo`: it trains both models, prints their table beside popularity,
and leaves runs that the other commands read."""

import pytest
from typer.testing import CliRunner

from bsarec import SequentialRecommender
from bsarec.cli import app


@pytest.mark.slow
def test_the_demo_trains_compares_and_leaves_loadable_runs(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--epochs", "1", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {
        line.split()[0]
        for line in result.output.splitlines()
        if line.startswith(("bsarec", "sasrec", "popularity"))
    }
    assert rows == {"bsarec", "sasrec", "popularity"}
    assert "BSARec recommendations" in result.output and f"runs saved under {tmp_path}" in result.output
    rec = SequentialRecommender.load(tmp_path / "bsarec")
    assert rec.metrics["epochs"] == 1 and len(rec.recommend(user=rec.dataset.user_ids[0], k=5).items) == 5
