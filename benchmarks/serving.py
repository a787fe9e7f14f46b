"""Capacity of `bsarec serve` with each engine, and single-history latency of PyTorch eager vs ONNX Runtime.

    python benchmarks/serving.py --run benchmarks/runs/baselines/LastFM/bsarec/paper/seed42

For each engine (`--engines torch onnx`), starts the real service (1 worker, 1 thread) on a loopback port and
sends POST /recommend with the histories of the run's users (k 10) from 1, 8 and 32 concurrent clients, each
level bounded by --requests and --seconds, then holds 32 clients for --soak seconds (no request cap) and counts
the errors; the clients are asyncio tasks in one process. Client and server share this machine's cores, so the
numbers are a floor for a dedicated server. Then times one history at a time in process: PyTorch eager
(`SequentialRecommender.recommend`, the bare scoring graph), the recommender with the ONNX engine, and the
exported ONNX scoring graph under ONNX Runtime (1 thread). Writes benchmarks/results/serving.{json,md}; run it
on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from bsarec.api import SequentialRecommender
from bsarec.data.split import pad_left
from bsarec.environment import provenance
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.serving.engine import choose_engine
from bsarec.serving.export import ScoringGraph, export_run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(values: list[float]) -> dict[str, float]:
    ms = np.asarray(values) * 1000
    return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)} | {"mean": float(ms.mean())}


def load_level(url: str, payloads: list[dict], clients: int, max_requests: int, max_seconds: float) -> dict:
    """`clients` concurrent clients on one asyncio loop (lighter on the shared cores than client threads),
    each sending its requests one after another."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + max_seconds
    per_client = max(1, max_requests // clients)

    async def client(http: httpx.AsyncClient, offset: int) -> None:
        nonlocal errors
        for i in range(per_client):
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            response = await http.post(f"{url}/recommend", json=payloads[(offset * 997 + i) % len(payloads)])
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    async def run_all() -> None:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            await asyncio.gather(*(client(http, c) for c in range(clients)))

    started = time.perf_counter()
    asyncio.run(run_all())
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "latency_ms": percentiles(latencies),
    }


def in_process_latency(run: Path, repeats: int) -> dict:
    import onnxruntime

    torch.set_num_threads(1)
    rec = SequentialRecommender.load(run)
    histories = [rec.dataset.sequences[i] for i in range(min(repeats, rec.dataset.num_users))]
    inputs = [torch.from_numpy(pad_left(h, rec.config.max_len)).unsqueeze(0) for h in histories]
    graph = ScoringGraph(rec.model.eval(), top_k=10, exclude_seen=True).eval()
    with tempfile.TemporaryDirectory() as tmp:
        meta = export_run(run, "onnx", Path(tmp) / "m.onnx", top_k=10, exclude_seen=True)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(meta["output"], options, providers=["CPUExecutionProvider"])
        timings: dict[str, list[float]] = {
            "api_recommend": [],
            "api_recommend_onnx_engine": [],
            "pytorch_graph": [],
            "onnxruntime_graph": [],
        }
        served = SequentialRecommender.load(run)
        choose_engine(served, "onnx", threads=1)
        ids = [[rec.dataset.item_ids[i] for i in h] for h in histories]
        for x, items in zip(inputs, ids, strict=True):
            started = time.perf_counter()
            rec.recommend(items=items, k=10)
            timings["api_recommend"].append(time.perf_counter() - started)
            started = time.perf_counter()
            served.recommend(items=items, k=10)
            timings["api_recommend_onnx_engine"].append(time.perf_counter() - started)
            started = time.perf_counter()
            with torch.no_grad():
                graph(x)
            timings["pytorch_graph"].append(time.perf_counter() - started)
            started = time.perf_counter()
            session.run(None, {"history": x.numpy()})
            timings["onnxruntime_graph"].append(time.perf_counter() - started)
    return {name: percentiles(values[5:]) for name, values in timings.items()}  # the first 5 warm up


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=1000, help="at most this many requests per level")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most this long per level")
    parser.add_argument("--latency-repeats", type=int, default=300)
    parser.add_argument("--engines", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx"])
    parser.add_argument("--soak", type=float, default=60.0, help="seconds of 32 clients after the levels")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/serving"))
    args = parser.parse_args()

    rec = SequentialRecommender.load(args.run)
    payloads = [
        {"items": [rec.dataset.item_ids[i] for i in seq[-50:]], "k": 10}
        for seq in rec.dataset.sequences[:500]
    ]
    levels, soaks = [], {}
    for engine in args.engines:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "bsarec", "serve", str(args.run), "--port", str(port), "--threads", "1"]
            + ["--engine", engine],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            load_level(url, payloads, 2, 50, 10)  # warm-up
            levels += [
                {"engine": engine, **load_level(url, payloads, c, args.requests, args.seconds)}
                for c in args.clients
            ]
            if args.soak:
                soaks[engine] = load_level(url, payloads, 32, 10**9, args.soak)
        finally:
            server.terminate()
            server.wait(timeout=10)
    latency = in_process_latency(args.run, args.latency_repeats)
    meta = {
        **provenance(),
        "run": str(args.run),
        "model": rec.config.model,
        "dataset": rec.dataset.name,
        "items": rec.dataset.n_items - 1,
    }
    atomic_write_json(
        args.results.with_suffix(".json"), {"meta": meta, "load": levels, "soak": soaks, "latency": latency}
    )
    lines = [
        f"# Serving: {meta['model']} on {meta['dataset']} ({meta['items']} items), k = 10",
        "",
        f"`{meta['command']}` — {meta['date']} — {meta['machine']}",
        "",
        "HTTP, POST /recommend, 1 worker with 1 thread; the clients run on the same 2 cores.",
        "",
        "| engine | clients | requests | errors | requests/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = levels + [
        {"engine": f"{engine}, {args.soak:.0f} s soak", **level} for engine, level in soaks.items()
    ]
    for level in rows:
        lat = level["latency_ms"]
        lines.append(
            f"| {level['engine']} | {level['clients']} | {level['requests']} | {level['errors']} | "
            f"{level['requests_per_s']:.0f} | {lat['p50']:.1f} | {lat['p95']:.1f} | {lat['p99']:.1f} |"
        )
    lines += [
        "",
        "One history at a time, in process, 1 thread (top-10 with the window's items excluded):",
        "",
        "| path | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for name, lat in latency.items():
        lines.append(f"| {name} | {lat['p50']:.2f} | {lat['p95']:.2f} | {lat['p99']:.2f} |")
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(statistics.fmean(level["requests_per_s"] for level in levels), file=sys.stderr)


if __name__ == "__main__":
    main()
