"""Samples per second with 1 and 2 training processes (DistributedDataParallel, gloo on CPU).

    python benchmarks/distributed.py --data-dir ../shared/data

Trains BSARec on LastFM (paper preset) for `--epochs` epochs with `bsarec train --nproc N --threads T` for
each (N, T) setting, `--repeats` times in turn, and reports the median training samples/s over every epoch
of every repeat (the training loop's own count: samples over the epoch's training seconds, validation
excluded). Global batch 256 in every setting, so the 2-process runs compute the same updates.
Writes benchmarks/results/distributed.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bsarec.environment import provenance
from bsarec.io import atomic_write_json, atomic_write_text
from bsarec.run_dir import read_history

SETTINGS = ((1, 1), (1, 2), (2, 1))  # (processes, threads per process)


def run_once(args: argparse.Namespace, nproc: int, threads: int) -> list[float]:
    output = Path(tempfile.mkdtemp(prefix="bsarec-ddp-"))
    try:
        command = [sys.executable, "-m", "bsarec", "train", "--model", "bsarec", "--dataset", args.dataset]
        command += ["--data-dir", str(args.data_dir), "--preset", "paper", "--epochs", str(args.epochs)]
        command += [
            "--nproc",
            str(nproc),
            "--threads",
            str(threads),
            "--no-progress",
            "--output",
            str(output),
        ]
        subprocess.run(command, check=True, capture_output=True)
        return [r["samples_per_s"] for r in read_history(output)]
    finally:
        shutil.rmtree(output, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--dataset", default="LastFM")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/distributed"))
    args = parser.parse_args()
    rates: dict[tuple[int, int], list[float]] = {s: [] for s in SETTINGS}
    for repeat in range(args.repeats):
        for nproc, threads in SETTINGS:
            rates[(nproc, threads)] += run_once(args, nproc, threads)
            print(repeat, nproc, threads, rates[(nproc, threads)][-args.epochs :], flush=True)
    base = statistics.median(rates[(1, 1)])
    rows = [
        {
            "processes": n,
            "threads_per_process": t,
            "median_samples_per_s": statistics.median(r),
            "samples_per_s": r,
            "speedup_vs_1x1": statistics.median(r) / base,
        }
        for (n, t), r in rates.items()
    ]
    meta = provenance()
    atomic_write_json(args.results.with_suffix(".json"), {**meta, "rows": rows})
    lines = [
        "# Training throughput: 1 vs 2 processes",
        "",
        f"`{meta['command']}` — {meta['date']} — {meta['machine']}",
        "",
        f"BSARec, {args.dataset}, paper preset, global batch 256; median over {args.repeats} runs x"
        f" {args.epochs} epochs of the training samples/s (validation excluded).",
        "",
        "| processes | threads each | samples/s (median) | vs 1 process x 1 thread |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['processes']} | {r['threads_per_process']} | {r['median_samples_per_s']:.0f} |"
        f" {r['speedup_vs_1x1']:.2f}x |"
        for r in rows
    ]
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
