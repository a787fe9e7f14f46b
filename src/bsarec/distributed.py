"""Multi-process training on torch.distributed, launched by torchrun (or `bsarec train --nproc N`).

Each process learns its rank from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK). Every process draws
the same global batches from the same seeded generator and takes its own contiguous share of each, so the
processes see disjoint shards of every epoch's shuffled samples and together exactly the single-process
batches. Evaluation is sharded the same way and the ranks are gathered, so every process computes the same
metrics; rank 0 decides early stopping and broadcasts the decision, and only rank 0 writes files.
Backend: nccl on GPUs, gloo on CPUs. Without torchrun (WORLD_SIZE unset or 1) everything here is a no-op.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def bounds(self, n: int) -> tuple[int, int]:
        """This process's contiguous share [lo, hi) of n rows (shares differ by at most one row)."""
        return n * self.rank // self.world, n * (self.rank + 1) // self.world

    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """Concatenate every process's share (as `bounds` cut them) back into the n rows, on every process."""
        if not self.enabled:
            return local
        width = -(-n // self.world)
        padded = torch.zeros(width, *local.shape[1:], dtype=local.dtype, device=self.device)
        padded[: len(local)] = local.to(self.device)
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        pieces = []
        for rank, part in enumerate(parts):
            lo, hi = n * rank // self.world, n * (rank + 1) // self.world
            pieces.append(part[: hi - lo])
        return torch.cat(pieces).to(local.device)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over the processes, on every process."""
        if not self.enabled:
            return value
        total = value.detach().to(self.device, torch.float64).clone()
        dist.all_reduce(total)
        return total.to(value.device)

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's value of `flag`, on every process."""
        if not self.enabled:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def gather_states(self, state: torch.Tensor) -> list[torch.Tensor]:
        """Every process's copy of a same-shaped tensor (e.g. a random generator's state), by rank."""
        if not self.enabled:
            return [state]
        parts = [torch.empty_like(state, device=self.device) for _ in range(self.world)]
        dist.all_gather(parts, state.to(self.device))
        return [p.to(state.device) for p in parts]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


SINGLE = ProcessGroup()


def process_group_from_env(device: str) -> ProcessGroup:
    """Join the process group torchrun set up (nccl on CUDA, gloo on CPU); SINGLE when not under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(_leave_process_group)  # we joined it, we leave it (torch warns otherwise)
    return ProcessGroup(
        dist.get_rank(), dist.get_world_size(), f"cuda:{torch.cuda.current_device()}" if cuda else "cpu"
    )


def leave_process_group() -> None:
    """After a run that ended well: wait for every process, then leave the group while the interpreter is whole
    (the exit handler would do it later, during shutdown, where gloo's threads can abort the process)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
