"""The HTTP service: FastAPI over a loaded run, served by Uvicorn (`bsarec serve RUN_DIR`).

Endpoints
- POST /recommend        one history: {"items": [original ids, oldest first], "k": 10, "exclude_seen": true,
                         "allow": null, "deny": null, "where": null}
                         -> {"items", "scores", "unknown", "empty_history"}
- POST /recommend/batch  {"histories": [[...], ...], "k", "exclude_seen", "allow", "deny", "where"}
                         -> {"results": [...]}
`where` ({"category": ["shoes", "boots"]}) keeps the items that hold one of the values of each named item
feature (a run trained with item features). `bsarec serve --new-items FILE` adds items that arrived after
training, represented by their features (docs/item_features.md).
- GET  /health           {"status": "ok"}, or 503 {"status": "not ready", "reason": ...} when the model cannot
                         score (its item table holds NaN or infinite values); /recommend then answers 503
- GET  /model            model, dataset, settings, item and user counts, the run's metrics and protocol
- GET  /metrics          Prometheus metrics of this worker: requests and errors by endpoint and status, a latency
                         histogram, the model and engine served
With `api_key` (`bsarec serve --api-key-env NAME`), every endpoint but /health requires
`Authorization: Bearer <key>`, compared in constant time; anything else gets a 401 that says nothing more.
OpenAPI docs at /docs. Every limit has a default and a flag: k, history length, batch size, request body
bytes. Invalid input gets a 4xx naming the field (422 from the schemas, 413 for an oversize body, 411 for a
body without Content-Length), never a 500.
Item ids may be strings or integers; they are matched by their text, as the dataset's id map stores them.
"""

from __future__ import annotations

import hmac
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from bsarec.api import SequentialRecommender
from bsarec.errors import ConfigError
from bsarec.serving.engine import choose_engine

ItemId = StrictInt | StrictStr  # strict: JSON true is not item 1, and 1.0 is not item 1


@dataclass
class ServiceLimits:
    max_k: int = 100
    max_history: int = 1000
    max_batch: int = 256
    max_body_bytes: int = 1_000_000


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled field ("wher") is an error, not ignored
    items: list[ItemId] = Field(description="the history, original item ids, oldest first")
    k: StrictInt = Field(10, ge=1, description="how many items to return")
    exclude_seen: StrictBool = Field(True, description="never return items of the history")
    allow: list[ItemId] | None = Field(None, description="only these items may be returned")
    deny: list[ItemId] | None = Field(None, description="these items are never returned")
    where: dict[StrictStr, list[ItemId]] | None = Field(
        None, description="only items holding one of these values of each named item feature"
    )


class Recommendation(BaseModel):
    items: list[ItemId]
    scores: list[float]
    unknown: list[ItemId] = Field(description="history ids not in the model's catalogue (ignored)")
    empty_history: bool = Field(
        description="nothing of the history was known: the answer for an empty sequence"
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    histories: list[list[ItemId]]
    k: StrictInt = Field(10, ge=1)
    exclude_seen: StrictBool = True
    allow: list[ItemId] | None = None
    deny: list[ItemId] | None = None
    where: dict[StrictStr, list[ItemId]] | None = None


class BatchResponse(BaseModel):
    results: list[Recommendation]


def _limit_error(field: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{"loc": ["body", field], "msg": message}]})


def _request_error(error: ConfigError) -> JSONResponse:
    """A 422 for a request the recommender refuses (an allow list of unknown ids only, a where no item meets),
    naming the field its message starts with."""
    return _limit_error(str(error).split(":")[0], str(error))


def _json_safe(value: Any) -> Any:
    """A validation error's details as JSON can carry them: the offending input may be NaN or infinite
    (`"k": 1e400`), which JSON cannot encode, and would otherwise turn a 422 into a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


ENDPOINTS = ("/recommend", "/recommend/batch", "/health", "/model", "/metrics", "/docs", "/openapi.json")


class ServiceMetrics:
    """The worker's Prometheus metrics, in a registry of its own (one per app, so tests and several apps in a
    process do not share counters). Each Uvicorn worker counts its own requests; a scrape reaches one worker."""

    def __init__(self, info: dict[str, str]):
        self.registry = CollectorRegistry()
        labels = ("endpoint", "status")
        self.requests = Counter("bsarec_requests", "HTTP requests answered", labels, registry=self.registry)
        self.errors = Counter(
            "bsarec_errors", "HTTP requests answered with a 4xx or 5xx", labels, registry=self.registry
        )
        self.latency = Histogram(
            "bsarec_request_seconds",
            "Seconds from request to response",
            ("endpoint",),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        Info("bsarec_model", "The run this worker serves", registry=self.registry).info(info)

    def observe(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in ENDPOINTS else "other"  # unknown paths must not grow the label set
        self.requests.labels(endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)


def create_app(
    run_dir: str | Path,
    limits: ServiceLimits | None = None,
    threads: int | None = 1,
    new_items: str | Path | None = None,
    api_key: str | None = None,
    engine: str = "torch",
    onnx_graph: bytes | None = None,
) -> FastAPI:
    """The service of one run. `onnx_graph`: its encoder's ONNX export, made once by `bsarec serve`, so that
    the workers do not each export it again."""
    limits = limits or ServiceLimits()
    if threads:
        torch.set_num_threads(threads)  # one intra-op thread per worker keeps latency flat under concurrency
    rec = SequentialRecommender.load(run_dir)
    if new_items:
        rec.add_items(new_items)
    # after the new items: the encoder holds them
    engine = choose_engine(rec, engine, threads or 1, onnx_graph)
    # as in training (a decayed Caser scores 9x faster); set for the whole process, which a worker owns
    torch.set_flush_denormal(rec.config.flush_denormal)
    unready = _cannot_score(rec)
    # Scoring one history takes about a millisecond: the endpoints score on the event loop itself, one request
    # at a time per worker, instead of handing each request to a thread pool whose threads would fight over
    # the GIL and the cores. More throughput comes from more workers (processes).
    app = FastAPI(
        title="bsarec",
        description=f"Top-k sequential recommendations from the {rec.config.model} run in {run_dir}.",
    )
    info = {
        "model": rec.config.model,
        "dataset": rec.dataset.name,
        "run_dir": str(run_dir),
        "items": rec.dataset.n_items - 1,
        "items_added_after_training": rec.added_items,
        "engine": engine,
        "item_features": rec.item_features.names if rec.item_features is not None else [],
        "users": rec.dataset.num_users,
        "max_len": rec.config.max_len,
        "settings": rec.config.to_dict(),
        "metrics": {k: rec.metrics.get(k) for k in ("valid", "test", "best_epoch", "protocol")},
        "limits": asdict(limits),
    }

    metrics = ServiceMetrics(
        {
            "model": rec.config.model,
            "dataset": rec.dataset.name,
            "engine": engine,
            "items": str(rec.dataset.n_items - 1),
            "run_dir": str(run_dir),
        }
    )
    expected = f"Bearer {api_key}".encode() if api_key else None

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _json_safe(error.errors())})

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return JSONResponse(
                status_code=413, content={"detail": f"request body over {limits.max_body_bytes} bytes"}
            )
        if request.method == "POST" and declared is None:  # a chunked body could be of any size
            return JSONResponse(status_code=411, content={"detail": "a Content-Length header is required"})
        return await call_next(request)

    @app.middleware("http")
    async def require_key(request: Request, call_next):  # runs before the body limit: added after it
        if expected is not None and request.url.path != "/health":
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse(
                    status_code=401,
                    content={"detail": "unauthorized"},
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    @app.middleware("http")
    async def count(request: Request, call_next):  # outermost: every answer is counted, 401s included
        started = time.perf_counter()
        response = await call_next(request)
        metrics.observe(request.url.path, response.status_code, time.perf_counter() - started)
        return response

    def check(k: int, histories: list[list[Any]], batch: bool) -> JSONResponse | None:
        if k > limits.max_k:
            return _limit_error("k", f"k is at most {limits.max_k}, got {k}")
        for i, history in enumerate(histories):
            if len(history) > limits.max_history:
                where = f"histories[{i}]" if batch else "items"
                return _limit_error(
                    where, f"a history holds at most {limits.max_history} items, got {len(history)}"
                )
        return None

    @app.get("/health")
    def health():
        if unready:
            return JSONResponse(status_code=503, content={"status": "not ready", "reason": unready})
        return {"status": "ok"}

    def not_ready() -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"the model cannot score: {unready}"})

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        return info

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/recommend", response_model=Recommendation)
    async def recommend(request: RecommendRequest):
        if unready:
            return not_ready()
        error = check(request.k, [request.items], batch=False)
        if error:
            return error
        try:
            result = rec.recommend(
                items=request.items,
                k=request.k,
                exclude_seen=request.exclude_seen,
                allow=request.allow,
                deny=request.deny,
                where=request.where,
            )
        except ConfigError as error:
            return _request_error(error)
        return Recommendation(**asdict(result))

    @app.post("/recommend/batch", response_model=BatchResponse)
    async def recommend_batch(request: BatchRequest):
        if unready:
            return not_ready()
        if len(request.histories) > limits.max_batch:
            return _limit_error(
                "histories", f"at most {limits.max_batch} histories, got {len(request.histories)}"
            )
        error = check(request.k, request.histories, batch=True)
        if error:
            return error
        try:
            results = rec.recommend_batch(
                request.histories,
                k=request.k,
                exclude_seen=request.exclude_seen,
                allow=request.allow,
                deny=request.deny,
                where=request.where,
            )
        except ConfigError as error:
            return _request_error(error)
        return BatchResponse(results=[Recommendation(**asdict(r)) for r in results])

    return app


def _cannot_score(rec: SequentialRecommender) -> str | None:
    """Why the loaded model cannot score (None when it can): every item's vector and the scores of an empty
    history must be finite, or every answer would be NaN."""
    with torch.no_grad():
        table = rec.model.item_embeddings
        bad = (~torch.isfinite(table).all(dim=1)).nonzero().flatten().tolist()
        if bad:
            ids = [rec.dataset.item_ids[i] for i in bad[:3]]
            return f"{len(bad)} items have NaN or infinite vectors (first: {', '.join(map(str, ids))})"
        empty = torch.zeros(1, rec.config.max_len, dtype=torch.long)
        scores = rec.model.encode(empty) @ table.T
        if not bool(torch.isfinite(scores[:, 1:]).all()):
            return "the scores of an empty history are NaN or infinite"
    return None


def app_from_environment() -> FastAPI:
    """The factory Uvicorn's workers call: settings travel in BSAREC_SERVE_* variables."""
    limits = ServiceLimits(
        **{
            name: int(os.environ[f"BSAREC_SERVE_{name.upper()}"])
            for name in ServiceLimits.__dataclass_fields__
            if f"BSAREC_SERVE_{name.upper()}" in os.environ
        }
    )
    threads = int(os.environ.get("BSAREC_SERVE_THREADS", "1"))
    new_items = os.environ.get("BSAREC_SERVE_NEW_ITEMS") or None
    key_variable = os.environ.get("BSAREC_SERVE_API_KEY_ENV") or None
    api_key = os.environ[key_variable] if key_variable else None  # the key never travels in our variables
    engine = os.environ.get("BSAREC_SERVE_ENGINE", "torch")
    graph_file = os.environ.get("BSAREC_SERVE_ONNX_GRAPH") or None
    graph = Path(graph_file).read_bytes() if graph_file else None
    return create_app(os.environ["BSAREC_SERVE_RUN_DIR"], limits, threads, new_items, api_key, engine, graph)
