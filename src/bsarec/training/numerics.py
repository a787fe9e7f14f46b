"""The arithmetic of a run: the CPU's denormal-float mode, set for the time training runs, and the precision
of the training step (`precision`: fp32, bf16 autocast, or TF32 matmuls on CUDA)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from bsarec.environment import cpu

log = logging.getLogger("bsarec")


def denormals_flushed() -> bool:
    """Whether the CPU flushes denormal floats to zero now (torch can set the mode but not read it)."""
    return bool((torch.tensor([2.0**-140]) * 1.0 == 0).item())


@contextmanager
def cpu_denormal_mode(flush: bool) -> Iterator[bool]:
    """Flush denormal floats to zero (or not) inside the block, then restore the mode found; yields whether
    this CPU supports flushing. The mode is process state, and other code (Hypothesis, for one) needs IEEE
    gradual underflow."""
    before = denormals_flushed()
    supported = torch.set_flush_denormal(flush)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(before)


def training_autocast(precision: str, device: str) -> torch.autocast:
    """The context of a training step's forward and loss: with "bf16", autocast to bfloat16 (matrix products
    and most element-wise work in bf16; weights, gradients, the optimizer and reductions such as the softmax
    in fp32). Evaluation always runs in fp32, so rankings are not decided by bf16 rounding."""
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16")


def warn_if_slow_precision(precision: str, device: str) -> bool:
    """Warn (and return True) when bf16 is asked of a CPU without bf16 instructions: torch then emulates the
    bf16 matrix products, and a BSARec step takes about 7 times as long as in fp32
    (benchmarks/results/step_cost_bf16_avx2.md), where a CPU with them takes 0.64 times as long."""
    if precision != "bf16" or device.split(":")[0] != "cpu":
        return False
    this_cpu = cpu()
    if this_cpu["bf16"]:
        return False
    log.warning(
        "precision bf16 on a CPU without bf16 instructions (%s): each training step is several times slower"
        " than fp32 here; leave precision at fp32 on this machine",
        this_cpu["model"],
    )
    return True


@contextmanager
def cuda_matmul_precision(precision: str) -> Iterator[None]:
    """With "tf32", CUDA matrix products and convolutions use TensorFloat-32 inside the block (inputs rounded
    to a 10-bit mantissa, fp32 accumulation); the process's settings are restored afterwards."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if precision == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
