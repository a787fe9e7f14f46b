"""Has a change made training slower? The training step of this checkout against another commit's, side by
side: `bsarec speed --no-straightforward` of each, alternating, in fresh processes.

    python benchmarks/speed_against.py REV --data-dir ../shared/data [--models bsarec sasrec] [--rounds 3]

REV is checked out into a temporary git worktree and run from its sources with this environment's packages.
Writes benchmarks/results/speed_against.{json,md}: the median seconds per step of each commit over the rounds,
and their ratio (this checkout / REV). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bsarec.environment import machine_line
from bsarec.io import atomic_write_json, atomic_write_text


def seconds_per_step(source: Path, model: str, dataset: str, args, out: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "bsarec",
        "speed",
        "--model",
        model,
        "--dataset",
        dataset,
        "--no-straightforward",
    ]
    command += ["--steps", str(args.steps), "--repeats", str(args.repeats), "--output", str(out)]
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(source)}
    )
    return json.loads(out.read_text())["ours"]["seconds_per_step"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rev")
    parser.add_argument("--models", nargs="+", default=["bsarec", "sasrec"])
    parser.add_argument("--dataset", default="LastFM")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/speed_against"))
    args = parser.parse_args()
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.rev], check=True, capture_output=True, text=True
    )
    rev_id = rev.stdout.strip()
    here = Path(__file__).resolve().parents[1] / "src"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "rev"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), rev_id], check=True, capture_output=True
        )
        try:
            for model in args.models:
                times: dict[str, list[float]] = {"this checkout": [], rev_id: []}
                for r in range(args.rounds):
                    for name, source in (("this checkout", here), (rev_id, worktree / "src")):
                        out = Path(tmp) / f"{model}-{r}-{len(times[name])}.json"
                        times[name].append(seconds_per_step(source, model, args.dataset, args, out))
                medians = {k: statistics.median(v) for k, v in times.items()}
                rows.append(
                    {
                        "model": model,
                        "seconds_per_step": medians,
                        "each_round": times,
                        "ratio": medians["this checkout"] / medians[rev_id],
                    }
                )
                print(rows[-1], flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)], check=False, capture_output=True
            )
    command = "python benchmarks/speed_against.py " + " ".join(sys.argv[1:])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    atomic_write_json(
        args.results.with_suffix(".json"),
        {
            "command": command,
            "date": stamp,
            "machine": machine_line(),
            "rev": rev_id,
            "dataset": args.dataset,
            "rows": rows,
        },
    )
    lines = [
        f"# Training step: this checkout against {rev_id} ({args.dataset})",
        "",
        f"`{command}` — {stamp} — {machine_line()}",
        "",
        f"Median over {args.rounds} alternating rounds of each round's median step ({args.repeats} x {args.steps} steps).",
        "",
        f"| model | this checkout s/step | {rev_id} s/step | ratio |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['seconds_per_step']['this checkout']:.4f} | {r['seconds_per_step'][rev_id]:.4f} | {r['ratio']:.3f} |"
        for r in rows
    ]
    atomic_write_text(args.results.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
