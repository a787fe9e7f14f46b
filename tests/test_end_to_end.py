"""The walk-through of docs/serving.md on a small generated log: raw CSV with string ids -> prepare -> train
-> recommend (one history and a file) -> serve -> HTTP, and the answers survive a restart of the service."""

import json

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bsarec.cli import app
from tests.serving.test_service import start_server, stop

runner = CliRunner()


def write_log(path):
    rng = np.random.default_rng(7)
    rows = ["customer,product,ts"]
    for u in range(90):
        start = int(rng.integers(0, 25))
        for t in range(int(rng.integers(6, 14))):
            rows.append(f"cust-{u:03d},prod-{(start + t) % 25:02d}-x,2024-01-{1 + t:02d}T10:00:00")
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.extras("serve")
@pytest.mark.slow
def test_log_to_served_recommendations(tmp_path):
    write_log(tmp_path / "events.csv")
    prepared = tmp_path / "shop"
    result = runner.invoke(
        app,
        ["data", "prepare", str(tmp_path / "events.csv"), "--output", str(prepared), "--user-col", "customer"]
        + ["--item-col", "product", "--time-col", "ts", "--kcore", "2"],
    )
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        ["train", "--dataset", str(prepared), "--set", "hidden_size=16", "--set", "max_len=10"]
        + ["--set", "lr=0.005", "--epochs", "6", "--no-progress", "--output", str(run)],
    )
    assert result.exit_code == 0, result.output

    history = ["prod-03-x", "prod-04-x", "prod-05-x"]
    result = runner.invoke(app, ["recommend", str(run), "--items", " ".join(history), "-k", "5"])
    assert result.exit_code == 0, result.output
    cli_items = [line.split()[1] for line in result.stdout.strip().splitlines()]
    assert len(cli_items) == 5 and all(i.startswith("prod-") for i in cli_items)
    assert not set(history) & set(cli_items)

    (tmp_path / "histories.csv").write_text("id,items\nq1," + " ".join(history) + "\n")
    result = runner.invoke(
        app,
        [
            "recommend",
            str(run),
            "--input",
            str(tmp_path / "histories.csv"),
            "--output",
            str(tmp_path / "r.parquet"),
        ]
        + ["-k", "5", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "r.parquet").to_pylist()[0]["items"] == cli_items

    process, url = start_server(run)
    try:
        body = httpx.post(f"{url}/recommend", json={"items": history, "k": 5}).json()
        assert body["items"] == cli_items and body["unknown"] == []
    finally:
        stop(process)
    process, url = start_server(run)  # a restarted service gives the same answer
    try:
        again = httpx.post(f"{url}/recommend", json={"items": history, "k": 5}).json()
        assert again == body
        assert json.loads(httpx.get(f"{url}/model").text)["items"] == 25
    finally:
        stop(process)
