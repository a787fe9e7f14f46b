"""`bsarec data prepare` on a 10-million-event synthetic log: time and peak memory.

    python benchmarks/prepare_scale.py --events 10000000

Writes a log of `--events` events (string user and item ids, integer timestamps, users drawn uniformly,
items from a Zipf law, rows in random order) as CSV and as Parquet into a temporary directory, then runs
`bsarec data prepare FILE --output DIR` on each in its own process and reports wall time and that process's
peak resident memory (the machine has 24 GiB). Writes benchmarks/results/prepare_scale.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from bsarec.environment import provenance
from bsarec.io import atomic_write_json, atomic_write_text


def write_log(directory: Path, events: int, users: int, items: int, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, events)  # about events / users events per user
    item = (rng.zipf(1.2, events) - 1) % items
    frame = pl.DataFrame(
        {"user": user, "item": item, "timestamp": rng.integers(1_500_000_000, 1_700_000_000, events)}
    ).select(
        user_id=pl.lit("u") + pl.col("user").cast(pl.String).str.pad_start(8, "0"),
        item_id=pl.lit("sku-") + pl.col("item").cast(pl.String),
        timestamp="timestamp",
    )
    paths = {"csv": directory / "events.csv", "parquet": directory / "events.parquet"}
    frame.write_csv(paths["csv"])
    frame.write_parquet(paths["parquet"])
    return paths


def prepare(path: Path, output: Path) -> dict:
    command = [sys.executable, "-m", "bsarec", "data", "prepare", str(path), "--output", str(output)]
    log = output.with_suffix(".log")
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{log.read_text()[-3000:]}")
    info = json.loads((output / "dataset.json").read_text())
    return {"seconds": seconds, "peak_rss_gb": usage.ru_maxrss / 1024**2, "report": info["report"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/prepare_scale"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bsarec-prepare-"))
    try:
        started = time.perf_counter()
        paths = write_log(work, args.events, args.users, args.items)
        write_seconds = time.perf_counter() - started
        rows = {}
        for kind, path in paths.items():
            rows[kind] = {
                "file_mb": path.stat().st_size / 1024**2,
                **prepare(path, work / f"prepared-{kind}"),
            }
            print(kind, {k: v for k, v in rows[kind].items() if k != "report"}, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta = {
        **provenance(),
        "log_write_seconds": write_seconds,
    }
    atomic_write_json(
        args.results.with_suffix(".json"),
        {**meta, "settings": vars(args) | {"results": str(args.results)}, "rows": rows},
    )
    report = rows["csv"]["report"]
    lines = [
        "# `bsarec data prepare` on a 10-million-event log",
        "",
        f"`{meta['command']}` — {meta['date']} — {meta['machine']}",
        "",
        f"{args.events:,} events, {report['users_read']:,} users and {report['items_read']:,} items read;"
        f" 5-core filtering keeps {report['rows_kept']:,} events of {report['users_kept']:,} users and"
        f" {report['items_kept']:,} items ({report['kcore_iterations']} iterations).",
        "",
        "| input | file MB | wall s | peak RSS GB |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {k} | {r['file_mb']:.0f} | {r['seconds']:.1f} | {r['peak_rss_gb']:.2f} |" for k, r in rows.items()
    ]
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
