"""This process's place in a (possibly) distributed evaluation run (torchrun)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Processes:
    """This process's place in a (possibly) distributed run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def setup(cls) -> Processes:
        """Join the process group torchrun describes (gloo on CPU, nccl on GPU), if any."""
        import torch
        import torch.distributed as dist

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if world_size > 1 and not dist.is_initialized():
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl" if cuda else "gloo")
            owns = True
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), local_rank, owns)
        return cls()

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def first_then_others(self, fn: Callable[[], object]) -> object:
        """Run ``fn`` on rank 0 first (e.g. to build a cache), then on the other ranks."""
        if self.rank == 0:
            value = fn()
            self.barrier()
        else:
            self.barrier()
            value = fn()
        return value

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()

    def device(self):
        import torch

        return torch.device(f"cuda:{self.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
