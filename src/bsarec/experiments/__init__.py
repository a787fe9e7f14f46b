"""Experiments: the benchmark grid (grid.py, its cells and tables), the speed benchmark (speed.py) and the
demo (demo.py). The CLI's `benchmark`, `speed` and `demo` commands are thin shells over these."""

from bsarec.experiments.demo import DemoResult, demo_report, run_demo
from bsarec.experiments.grid import BenchmarkGrid, GridOutcome, run_benchmark
from bsarec.experiments.speed import run_speed_benchmark

__all__ = [
    "BenchmarkGrid",
    "DemoResult",
    "GridOutcome",
    "demo_report",
    "run_benchmark",
    "run_demo",
    "run_speed_benchmark",
]
