"""This machine's own limit: fp32 and bf16 matrix-product throughput (GFLOP/s) at the shapes of a BSARec
training step on Beauty and on one large square product, at 1 and 2 threads (`bsarec.experiments.speed.
matmul_peak`). Speed tables report a step's GFLOP/s as a share of the fp32 peak measured here.

    python benchmarks/matmul_peak.py            # writes benchmarks/results/matmul_peak.{json,md}

Run it on a quiet machine; about a minute.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bsarec.environment import cpu, machine_line, provenance
from bsarec.experiments.speed import PEAK_SHAPES, matmul_peak
from bsarec.io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    rows = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rows[threads] = {
            name: matmul_peak(dtype) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
        }
    atomic_write_json(RESULTS / "matmul_peak.json", {**provenance(), "cpu": cpu(), "threads": rows})
    shapes = [f"{m}x{k}x{n}" for m, k, n in PEAK_SHAPES]
    lines = [
        "# Matrix-product peak of this machine",
        "",
        f"`{provenance()['command']}` on {machine_line()}.",
        "",
        "GFLOP/s of `a @ b` (m x k times k x n), the best of 5 timings each; the shapes are those of a BSARec "
        "training step on Beauty (12800 = 256 samples x 50 positions, 12102 items) and one large square.",
        "",
        "| threads | dtype | " + " | ".join(shapes) + " | peak |",
        "|---|---|" + "---|" * (len(shapes) + 1),
    ]
    for threads, by_dtype in rows.items():
        for name, result in by_dtype.items():
            cells = " | ".join(f"{result['gflop_per_s'][s]:.0f}" for s in shapes)
            lines.append(f"| {threads} | {name} | {cells} | {result['peak']:.0f} |")
    fp32, bf16 = rows[2]["fp32"]["peak"], rows[2]["bf16"]["peak"]
    lines += ["", f"At 2 threads bf16 products run {bf16 / fp32:.1f}x as fast as fp32 ones at their peaks."]
    atomic_write_text(RESULTS / "matmul_peak.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
