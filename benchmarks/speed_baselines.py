"""Speed and memory of every model's training step on LastFM (paper presets), against the reference code.

    python benchmarks/speed_baselines.py --data-dir ../shared/data

Each model is timed in its own process (`bsarec speed --no-straightforward`), so that the peak resident
memory is that model's own. Writes benchmarks/results/speed_baselines.{json,md}. The reference code's
timings (SASRec 27 s, DuoRec 95 s, FEARec 253 s and 5.2 GB per LastFM epoch on this kind of machine) are the
ones reported in the project's issue, not re-run here. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bsarec.io import atomic_write_json, atomic_write_text

MODELS = [
    "bsarec",
    "caser",
    "gru4rec",
    "sasrec",
    "bert4rec",
    "fmlprec",
    "duorec",
    "fearec",
    "tvrec",
    "wearec",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--dataset", default="LastFM")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/speed_baselines"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            out = Path(tmp) / f"{model}.json"
            command = [sys.executable, "-m", "bsarec", "speed", "--model", model, "--dataset", args.dataset]
            command += ["--steps", str(args.steps), "--repeats", str(args.repeats), "--no-straightforward"]
            command += ["--output", str(out)] + (["--data-dir", args.data_dir] if args.data_dir else [])
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            results[model] = json.loads(out.read_text())
            print(model, f"{results[model]['ours']['seconds_per_epoch']:.1f} s/epoch", flush=True)
    env = next(iter(results.values()))["environment"]
    meta = {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{env['machine']}, {env['cpu_count']} cores, {env['threads']} torch threads, torch {env['torch']}",
    }
    atomic_write_json(args.results.with_suffix(".json"), {"meta": meta, "results": results})
    lines = [
        f"# Training speed of every model ({args.dataset}, paper presets, fp32, batch 256)",
        "",
        f"`{meta['command']}` — {meta['date']} — {meta['machine']}",
        "",
        "Median of the repeats; epoch time = median seconds per step x steps per epoch; peak RSS of the process.",
        "",
        "| model | samples/s | s/epoch | s/valid pass | GFLOP/step | peak RSS MB | reference code s/epoch | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, r in results.items():
        m = r["ours"]
        ref = r.get("reference_code_reported", {})
        speedup = r.get("speedup_vs_reference_code_reported", {}).get("epoch")
        lines.append(
            f"| {model} | {m['samples_per_s']:.0f} | {m['seconds_per_epoch']:.1f} | {m['seconds_per_valid_pass']:.2f} | "
            f"{m['gflop_per_step']:.2f} | {m['peak_rss_mb_so_far']:.0f} | {ref.get('epoch', '–')} | "
            + (f"{speedup:.1f}x" if speedup else "–")
            + " |"
        )
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
