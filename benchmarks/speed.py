"""Speed benchmark: `bsarec speed` on LastFM and Beauty at the paper settings, results committed.

    python benchmarks/speed.py --data-dir ../shared/data

Writes benchmarks/results/speed.json and speed.md (median of repeats; both modes measured side by side in
one process; the reference code's timings are the ones reported for this kind of machine, not re-run here).
Run it on a quiet machine: other processes on the 2 cores distort every number.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bsarec.experiments.speed import run_speed_benchmark
from bsarec.io import atomic_write_json, atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["LastFM", "Beauty"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/speed"))
    args = parser.parse_args()
    command = "python " + " ".join(sys.argv)
    results = {}
    for name in args.datasets:
        results[name] = run_speed_benchmark(name, args.data_dir, "bsarec", "paper", args.steps, args.repeats)
        print(name, "done", flush=True)
    env = next(iter(results.values()))["environment"]
    meta = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{env['machine']}, {env['cpu_count']} cores, {env['threads']} torch threads, torch {env['torch']}",
    }
    atomic_write_json(args.results.with_suffix(".json"), {"meta": meta, "results": results})
    lines = [
        "# Training and validation speed (BSARec, paper presets, fp32, batch 256)",
        "",
        f"`{command}` — {meta['date']} — {meta['machine']}",
        "",
        "| dataset | mode | samples/s | s/epoch | s/valid pass | GFLOP/step | GFLOP/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for mode in ("ours", "straightforward"):
            m = r[mode]
            lines.append(
                f"| {name} | {mode} | {m['samples_per_s']:.0f} | {m['seconds_per_epoch']:.1f} | "
                f"{m['seconds_per_valid_pass']:.2f} | {m['gflop_per_step']:.2f} | {m['achieved_gflop_per_s']:.0f} | "
                f"{m['peak_rss_mb_so_far']:.0f} |"
            )
        if "reference_code_reported" in r:
            ref = r["reference_code_reported"]
            lines.append(
                f"| {name} | reference code (reported) | — | {ref['epoch']:.1f} | {ref['valid']:.2f} | — | — | — |"
            )
    lines += ["", "Speed-ups (epoch / validation pass):", ""]
    for name, r in results.items():
        s = r["speedup_vs_straightforward"]
        line = f"- {name}: {s['epoch']:.2f}x / {s['valid']:.2f}x against the straightforward step measured side by side"
        if "speedup_vs_reference_code_reported" in r:
            ref = r["speedup_vs_reference_code_reported"]
            line += (
                f"; {ref['epoch']:.2f}x / {ref['valid']:.2f}x against the reference code's reported timings"
            )
        lines.append(line)
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
