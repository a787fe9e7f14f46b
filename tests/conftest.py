from __future__ import annotations

from pathlib import Path

import pytest

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
