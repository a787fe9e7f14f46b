"""The service's Prometheus metrics (scraped and parsed with prometheus_client's own parser) and its optional
API key (required on every endpoint but /health, refused with a bare 401)."""

import pytest

pytest.importorskip("fastapi", reason="needs pip install 'bsarec[serve]'")
pytest.importorskip("prometheus_client", reason="needs pip install 'bsarec[serve]'")
import torch
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from bsarec.cli import app as cli
from bsarec.errors import ConfigError
from bsarec.serving.app import create_app


@pytest.fixture
def client(tiny_run):
    service = TestClient(create_app(tiny_run, threads=None, api_key="s3cret"))
    yield service
    torch.set_flush_denormal(False)  # the app sets the worker's mode; later tests need IEEE floats


def scrape(client) -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_every_endpoint_but_health_needs_the_key(client):
    assert client.get("/health").status_code == 200
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "s3cret"},
        {"Authorization": "Bearer s3cre"},
    ):
        for request in (
            lambda h: client.get("/model", headers=h),
            lambda h: client.get("/metrics", headers=h),
            lambda h: client.post("/recommend", headers=h, json={"items": []}),
        ):
            response = request(headers)
            assert response.status_code == 401 and response.json() == {"detail": "unauthorized"}
            assert response.headers["www-authenticate"] == "Bearer"
    good = client.post(
        "/recommend", headers={"Authorization": "Bearer s3cret"}, json={"items": ["c00-i01"], "k": 3}
    )
    assert good.status_code == 200 and len(good.json()["items"]) == 3


def test_metrics_count_requests_errors_and_latency(client):
    key = {"Authorization": "Bearer s3cret"}
    for _ in range(3):
        client.post("/recommend", headers=key, json={"items": ["c00-i01"], "k": 2})
    client.post("/recommend", headers=key, json={"items": ["c00-i01"], "k": 0})  # 422
    client.post("/recommend", json={"items": []})  # 401
    client.get("/nowhere", headers=key)  # 404, counted as "other"
    samples = scrape(client)
    requests = samples["bsarec_requests_total"]
    assert requests[(("endpoint", "/recommend"), ("status", "200"))] == 3
    assert requests[(("endpoint", "/recommend"), ("status", "422"))] == 1
    assert requests[(("endpoint", "/recommend"), ("status", "401"))] == 1
    assert requests[(("endpoint", "other"), ("status", "404"))] == 1
    errors = samples["bsarec_errors_total"]
    assert (
        errors[(("endpoint", "/recommend"), ("status", "422"))] == 1
        and (("endpoint", "/recommend"), ("status", "200")) not in errors
    )
    latency = samples["bsarec_request_seconds_count"][(("endpoint", "/recommend"),)]
    assert latency == 5 and samples["bsarec_request_seconds_sum"][(("endpoint", "/recommend"),)] > 0
    (info,) = samples["bsarec_model_info"]
    assert dict(info)["model"] == "sasrec" and dict(info)["engine"] == "torch"


def test_serve_refuses_a_key_variable_that_is_not_set(tiny_run, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    result = CliRunner().invoke(cli, ["serve", str(tiny_run), "--api-key-env", "NO_SUCH_KEY"])
    assert isinstance(result.exception, ConfigError) and "NO_SUCH_KEY" in str(result.exception)
