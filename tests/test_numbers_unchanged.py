"""Every model, trained for two epochs on the embedded data, gives the losses and metrics recorded in
tests/numbers_unchanged.json. A change meant as a refactor must leave them as they are; a change meant to alter
training (sample order, initialisation, a loss) must say so and re-record them with
`python -m tests.test_numbers_unchanged`. benchmarks/check_numbers.py does the same on LastFM, bit for bit.

The comparison allows float rounding: losses to a relative 1e-5, and HR/NDCG to two users' worth (a tie
broken the other way on another CPU), which any change of semantics (another draw, another order) exceeds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bsarec import SequentialRecommender, generate_synthetic
from bsarec.config import RunConfig
from bsarec.models import MODELS

RECORDED = Path(__file__).with_name("numbers_unchanged.json")
USERS = 400


def train_briefly(model: str) -> dict[str, float]:
    config = RunConfig(  # fp32: the recorded numbers are the papers' arithmetic, on every machine
        model=model,
        seed=3,
        epochs=2,
        max_len=20,
        hidden_size=32,
        batch_size=128,
        threads=1,
        num_heads=2,
        precision="fp32",
    )
    rec = SequentialRecommender(config=config).fit(generate_synthetic(n_users=USERS), progress=False)
    return {
        "loss": rec.result.history[-1]["loss"],
        "valid_NDCG@20": rec.metrics["valid"]["NDCG@20"],
        "test_HR@10": rec.metrics["test"]["HR@10"],
        "test_NDCG@10": rec.metrics["test"]["NDCG@10"],
    }


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.slow
def test_numbers_unchanged(model):
    recorded = json.loads(RECORDED.read_text())[model]
    got = train_briefly(model)
    assert got["loss"] == pytest.approx(recorded["loss"], rel=1e-5)
    for name in ("valid_NDCG@20", "test_HR@10", "test_NDCG@10"):
        assert got[name] == pytest.approx(recorded[name], abs=2 / USERS), name


if __name__ == "__main__":  # re-record
    models = sys.argv[1:] or list(MODELS)
    table = json.loads(RECORDED.read_text()) if RECORDED.is_file() else {}
    table |= {m: train_briefly(m) for m in models}
    RECORDED.write_text(json.dumps(table, indent=1) + "\n")
