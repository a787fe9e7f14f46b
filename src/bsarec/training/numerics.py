"""The CPU's denormal-float mode, set for the time training runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


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
