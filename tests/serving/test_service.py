"""The HTTP service, as a real server process on a loopback port, talked to over HTTP."""

import concurrent.futures
import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

from bsarec import SequentialRecommender
from bsarec.data.synthetic import generate_synthetic

pytestmark = [pytest.mark.extras("serve"), pytest.mark.slow]  # a real server process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir, *flags):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bsarec", "serve", str(run_dir), "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode())
    process.kill()
    raise RuntimeError("the server did not start in 60 s")


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    data = generate_synthetic(n_users=60, n_clusters=3, items_per_cluster=8, max_length=14, seed=5)
    path = tmp_path_factory.mktemp("serve") / "run"
    SequentialRecommender("bsarec", epochs=2, hidden_size=16, max_len=10, num_heads=1).fit(
        data, run_dir=path, progress=False
    )
    return path


@pytest.fixture(scope="module")
def server(run_dir):
    process, url = start_server(run_dir, "--max-k", "20", "--max-history", "30", "--max-batch", "4")
    yield url
    stop(process)


def test_health_model_and_docs(server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    info = httpx.get(f"{server}/model").json()
    assert info["model"] == "bsarec" and info["items"] == 24 and info["limits"]["max_k"] == 20
    assert set(info["metrics"]["test"]) >= {"HR@10", "NDCG@10"}
    assert httpx.get(f"{server}/docs").status_code == 200
    assert "/recommend/batch" in httpx.get(f"{server}/openapi.json").json()["paths"]


def test_recommend_original_ids_unknown_and_seen(server):
    history = ["c00-i01", "c00-i02", "nope"]
    body = httpx.post(f"{server}/recommend", json={"items": history, "k": 5}).json()
    assert len(body["items"]) == 5 and len(body["scores"]) == 5
    assert body["unknown"] == ["nope"] and body["empty_history"] is False
    assert not set(history) & set(body["items"])
    empty = httpx.post(f"{server}/recommend", json={"items": [], "k": 3}).json()
    assert empty["empty_history"] is True and len(empty["items"]) == 3
    denied = httpx.post(
        f"{server}/recommend", json={"items": history, "k": 5, "deny": [body["items"][0]]}
    ).json()
    assert body["items"][0] not in denied["items"]


def test_batch(server):
    body = httpx.post(
        f"{server}/recommend/batch", json={"histories": [["c01-i03"], [], ["x"]], "k": 2}
    ).json()
    assert [len(r["items"]) for r in body["results"]] == [2, 2, 2]
    assert body["results"][2]["unknown"] == ["x"]


@pytest.mark.parametrize(
    "path, payload, status, field",
    [
        ("/recommend", {"items": "c00-i01", "k": 3}, 422, "items"),
        ("/recommend", {"items": ["c00-i01"], "k": "many"}, 422, "k"),
        ("/recommend", {"items": ["c00-i01"], "k": 0}, 422, "k"),
        ("/recommend", {"items": ["c00-i01"], "k": 21}, 422, "k"),
        ("/recommend", {"items": ["c00-i01"] * 31}, 422, "items"),
        ("/recommend", {"k": 3}, 422, "items"),
        ("/recommend/batch", {"histories": [[]] * 5}, 422, "histories"),
        ("/recommend/batch", {"histories": [["a"] * 31]}, 422, "histories[0]"),
    ],
)
def test_invalid_input_gets_a_4xx_naming_the_field(server, path, payload, status, field):
    response = httpx.post(f"{server}{path}", json=payload)
    assert response.status_code == status, response.text
    assert field in json.dumps(response.json()["detail"])


@pytest.mark.slow
def test_malformed_json_and_oversize_bodies(server, run_dir):
    response = httpx.post(
        f"{server}/recommend", content=b'{"items": [1, 2', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "json" in response.text.lower()
    process, url = start_server(run_dir, "--max-body-bytes", "200")
    try:
        big = httpx.post(f"{url}/recommend", json={"items": ["c00-i01"] * 40})
        assert big.status_code == 413 and "200 bytes" in big.text
        assert httpx.post(f"{url}/recommend", json={"items": ["c00-i01"]}).status_code == 200
    finally:
        stop(process)


def test_concurrent_requests_all_succeed_and_agree(server):
    payload = {"items": ["c02-i01", "c02-i02"], "k": 4}
    expected = httpx.post(f"{server}/recommend", json=payload).json()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: httpx.post(f"{server}/recommend", json=payload), range(48)))
    assert all(r.status_code == 200 and r.json() == expected for r in responses)


@pytest.mark.slow
def test_answers_survive_a_restart(run_dir, server):
    payload = {"items": ["c01-i01", "c01-i02", "c01-i03"], "k": 6}
    before = httpx.post(f"{server}/recommend", json=payload).json()
    process, url = start_server(run_dir)
    try:
        assert httpx.post(f"{url}/recommend", json=payload).json() == before
    finally:
        stop(process)


def test_the_app_flushes_denormals_as_its_run_trained(run_dir):
    import torch

    from bsarec.serving.app import create_app

    denormal = torch.tensor([1e-39])  # below 2**-126
    try:
        torch.set_flush_denormal(False)
        create_app(run_dir, threads=None)
        assert (denormal * 1.0 == 0).item()
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize(
    "body, field",
    [
        ('{"items": ["c00-i01"], "k": 1e400}', "k"),  # infinite: the error body must still encode
        ('{"items": [NaN]}', "items"),
        ('{"items": ["c00-i01"], "k": true}', "k"),  # not k = 1
        ('{"items": ["c00-i01"], "exclude_seen": "no"}', "exclude_seen"),
        ('{"items": [1.0]}', "items"),  # not item 1
    ],
)
def test_non_finite_and_loosely_typed_values_get_a_422_never_a_500(server, body, field):
    response = httpx.post(f"{server}/recommend", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["detail"])


def test_an_allow_list_of_unknown_ids_only_is_refused_with_its_reason(server):
    response = httpx.post(f"{server}/recommend", json={"items": ["c00-i01"], "allow": ["nope", "nada"]})
    assert response.status_code == 422 and "none of its 2 ids is in the catalogue" in response.text
    partly = httpx.post(
        f"{server}/recommend", json={"items": ["c00-i01"], "k": 3, "allow": ["nope", "c00-i02"]}
    )
    assert partly.status_code == 200 and partly.json()["items"] == ["c00-i02"]
