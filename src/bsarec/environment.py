"""Where a run or a benchmark ran: Python, torch, threads, machine, date (for result files)."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import torch


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def machine_line() -> str:
    """One line for a result file's header: machine, cores, torch, date."""
    env = environment()
    return f"{env['machine']}, {env['cpu_count']} cores, torch {env['torch']}, {time.strftime('%Y-%m-%d')}"


def provenance() -> dict[str, str]:
    """The command line, UTC date and machine of a benchmark script's run, for its result files."""
    return {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_line(),
    }
