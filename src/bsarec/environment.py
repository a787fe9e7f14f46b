"""Where a run or a benchmark ran: Python, torch, threads, machine, date (for result files)."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU instructions that make bf16 matrix products fast


def cpu() -> dict[str, Any]:
    """The CPU's model name and whether it computes bf16 in hardware: bf16 autocast speeds a CPU step up only
    where it does, and slows it down elsewhere (docs/scaling.md)."""
    model, flags = platform.processor() or platform.machine(), set()
    if CPUINFO.is_file():  # Linux: the first processor's block names the model before its flags
        for line in CPUINFO.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    return {"model": model, "bf16": any(flag in flags for flag in BF16_FLAGS)}


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def machine_line() -> str:
    """One line for a result file's header: machine, CPU (and whether it has bf16 instructions), cores, torch,
    date."""
    env = environment()
    bf16 = "with" if env["cpu"]["bf16"] else "without"
    return (
        f"{env['machine']} ({env['cpu']['model']}, {bf16} bf16 instructions), {env['cpu_count']} cores,"
        f" torch {env['torch']}, {time.strftime('%Y-%m-%d')}"
    )


def provenance() -> dict[str, str]:
    """The command line, UTC date and machine of a benchmark script's run, for its result files."""
    return {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_line(),
    }
