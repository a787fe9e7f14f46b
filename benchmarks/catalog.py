"""Large catalogues: full vs sampled softmax at 10^4, 10^5 and 10^6 items.

    python benchmarks/catalog.py                      # every size and mode, 3 epochs each
    python benchmarks/catalog.py --items 10000 --modes full

Each (items, mode) cell trains BSARec for a few epochs in its own process on a synthetic log of `--users`
users with `--length` events each, items drawn from a Zipf law over the whole catalogue, and reports the
median time per training epoch, the median full-ranking validation time (every item is a candidate,
scored in bounded chunks) and the process's peak resident memory. "sampled" is sampled softmax with
`--negatives` popularity-drawn, logQ-corrected items per batch. Accuracy is not measured here (the data is
random); see `bash benchmarks/grids.sh sampled-softmax-beauty` for the accuracy cost on Beauty.
Writes benchmarks/results/catalog.{json,md}; cells already in the JSON file are kept (resumable).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from bsarec.environment import provenance
from bsarec.io import atomic_write_json, atomic_write_text

SIZES = (10_000, 100_000, 1_000_000)
MODES = ("full", "sampled")


def synthetic_log(n_items: int, users: int, length: int, seed: int = 0):
    from bsarec.data.dataset import SequenceDataset

    rng = np.random.default_rng(seed)
    ranks = rng.zipf(1.2, size=(users, length))
    items = ((ranks - 1) % (n_items - 1)) + 1
    permutation = rng.permutation(n_items - 1) + 1  # popular items spread over the table
    sequences = [permutation[row - 1].astype(np.int64) for row in items]
    return SequenceDataset(
        sequences=sequences,
        user_ids=list(range(users)),
        item_ids=[None, *range(1, n_items)],
        name=f"zipf-{n_items}",
    )


def one_cell(n_items: int, mode: str, args: argparse.Namespace) -> dict:
    import torch

    from bsarec import SequentialRecommender

    torch.set_num_threads(args.threads)
    data = synthetic_log(n_items, args.users, args.length)
    settings = dict(
        max_len=args.length, epochs=args.epochs, patience=100, threads=args.threads, alpha=0.7, c=5
    )
    if mode == "sampled":
        settings |= dict(softmax_negatives=args.negatives, softmax_sampler="popularity")
    rec = SequentialRecommender("bsarec", **settings).fit(data, progress=False, evaluate_test=False)
    history = rec.result.history
    return {
        "items": n_items,
        "mode": mode,
        "training_samples": len(rec.split.train_targets),
        "epoch_seconds": statistics.median(r["train_seconds"] for r in history),
        "samples_per_s": statistics.median(r["samples_per_s"] for r in history),
        "eval_seconds": statistics.median(r["valid_seconds"] for r in history),
        "eval_users": len(rec.split.valid),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "epochs": len(history),
    }


def table(cells: list[dict], negatives: int) -> str:
    rows = [
        "| items | softmax | s/epoch | samples/s | eval s (all items) | peak RSS MB |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for c in sorted(cells, key=lambda c: (c["items"], c["mode"])):
        mode = "full" if c["mode"] == "full" else f"sampled ({negatives})"
        rows.append(
            f"| {c['items']:,} | {mode} | {c['epoch_seconds']:.1f} | {c['samples_per_s']:.0f} |"
            f" {c['eval_seconds']:.2f} | {c['peak_rss_mb']:.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--length", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--negatives", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/catalog"))
    parser.add_argument("--one", nargs=2, metavar=("ITEMS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_cell(int(args.one[0]), args.one[1], args)))
        return
    path = args.results.with_suffix(".json")
    saved = json.loads(path.read_text()) if path.is_file() else {"cells": []}
    cells = saved["cells"]
    for n_items in args.items:
        for mode in args.modes:
            if any(c["items"] == n_items and c["mode"] == mode for c in cells):
                continue
            forwarded = [
                f"--{k}={getattr(args, k)}" for k in ("users", "length", "epochs", "negatives", "threads")
            ]
            command = [sys.executable, __file__, "--one", str(n_items), mode, *forwarded]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            cells.append(json.loads(output.strip().splitlines()[-1]))
            print(cells[-1], flush=True)
            meta = {
                **provenance(),
                "settings": {
                    k: getattr(args, k) for k in ("users", "length", "epochs", "negatives", "threads")
                },
            }
            atomic_write_json(path, {**meta, "cells": cells})
            atomic_write_text(
                args.results.with_suffix(".md"),
                f"# Full vs sampled softmax by catalogue size\n\n`{meta['command']}` — {meta['date']} —"
                f" {meta['machine']}\n\nBSARec (hidden 64, 2 layers, max_len {args.length}), {args.users} users x"
                f" {args.length} Zipf-drawn events; medians over {args.epochs} epochs; each cell in its own"
                f" process. Sampled: {args.negatives} popularity-drawn, logQ-corrected items per batch.\n\n"
                + table(cells, args.negatives)
                + "\n",
            )


if __name__ == "__main__":
    main()
