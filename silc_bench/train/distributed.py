"""Training's view of the process group: one process per device, gloo on CPU, nccl on CUDA.

The group itself is joined and left by `core.dist` (`init`, `shutdown`), the same setup
evaluation uses, with its collective timeout and launcher checks; a plain
`silc-bench train` run (no WORLD_SIZE, or 1) never touches torch.distributed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed

from silc_bench.core import dist


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    dev = torch.device(dist.resolve_device(device))
    if not dist.launched():
        return Dist(0, 1, dev)
    world = dist.init(dev.type)
    if dev.type == "cuda":
        dev = torch.device("cuda", world.local_rank)
    return Dist(world.rank, world.size, dev)


def teardown(d: Dist, sync: bool = True) -> None:
    if d.world > 1:
        dist.shutdown(sync)


def barrier(d: Dist) -> None:
    if d.world > 1:
        torch.distributed.barrier()
