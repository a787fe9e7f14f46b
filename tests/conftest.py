from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bsarec.extras import EXTRAS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def write(tmp_path):
    """Write a text file into the test's temp dir and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


@pytest.fixture
def press_ctrl_c(monkeypatch):
    """press_ctrl_c(n): training raises KeyboardInterrupt, as Ctrl-C does, in its n-th validation pass;
    press_ctrl_c(None) lets it train on."""
    from bsarec.training import trainer

    real_evaluate = trainer.evaluate

    def arm(at: int | None) -> None:
        calls = {"n": 0}

        def evaluate(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == at:
                raise KeyboardInterrupt
            return real_evaluate(*args, **kwargs)

        monkeypatch.setattr(trainer, "evaluate", real_evaluate if at is None else evaluate)

    return arm


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished one-epoch SASRec run on a small synthetic dataset: read it, copy it before changing it."""
    from bsarec import SequentialRecommender, generate_synthetic

    run = tmp_path_factory.mktemp("tiny") / "run"
    data = generate_synthetic(n_users=40, n_clusters=3, items_per_cluster=8, max_length=14, seed=2)
    settings = {"hidden_size": 16, "max_len": 10, "num_heads": 1, "epochs": 1, "threads": 1}
    SequentialRecommender("sasrec", **settings).fit(data, run_dir=run, progress=False)
    return run


def extras_installed(*extras: str) -> bool:
    """Whether every module of these optional extras (bsarec.extras.EXTRAS) is installed."""
    return all(importlib.util.find_spec(module) is not None for extra in extras for module in EXTRAS[extra])


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "extras(*names): needs these optional extras; skipped, naming them, where one is not installed",
    )
    config.addinivalue_line(
        "markers",
        "slow: takes a second or more on the 2-core machine (it trains, exports or starts processes); "
        "`make test-fast` leaves these out",
    )


def pytest_collection_modifyitems(config, items):
    """`make test` installs every extra, so nothing is skipped there; a set-up without some extras (pip install
    -e '.[test]') runs every test that does not need them."""
    for item in items:
        for mark in item.iter_markers("extras"):
            missing = [extra for extra in mark.args if not extras_installed(extra)]
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"needs pip install 'bsarec[{','.join(missing)}]'"))
