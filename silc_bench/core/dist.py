"""Evaluation across processes with torch.distributed (`torchrun ... -m silc_bench run`).

The rule that keeps every number equal to a one-process run: ranks only ever split the
*encoding* work. Each rank encodes a contiguous block of the dataset (sizes differ by at
most one, nothing duplicated or dropped, an empty block when there are more ranks than
samples); the blocks are gathered in rank order, which is dataset order; every rank then
holds the same arrays and computes the same metrics. zs-seg gathers its per-image IoU areas
instead of predictions. Only rank 0 writes files (results, the feature cache); a cache hit
on rank 0 is broadcast, so other ranks never read a half-written entry.

Failures: local work runs inside `gather_outcome`, so an error on one rank (a bad image,
a missing file) reaches every rank at the next gather and all exit the same way: a
UserError exits 2 on every rank with one message (printed by rank 0). A rank that dies or
hangs makes the others fail at the collective timeout ($SILC_BENCH_DIST_TIMEOUT seconds,
default 1800), and torchrun stops the rest when a worker exits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np

from silc_bench.core.errors import UserError

T = TypeVar("T")
TIMEOUT_ENV = "SILC_BENCH_DIST_TIMEOUT"
LEAVE_GRACE_S = 3.0  # a failing non-zero rank waits this long for rank 0 to print (leave)


class DistributedFailure(RuntimeError):
    """A rank failed for a reason that is not the user's input (reported with its rank)."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


_WORLD = World()


def current() -> World:
    return _WORLD


def launched() -> bool:
    """Started by torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:  # not a launcher's value: one process
        return False


MAX_TIMEOUT_S = 7 * 24 * 3600.0


def timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "1800")
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"${TIMEOUT_ENV} must be a number of seconds, not {raw!r}") from None
    if not 0 < value <= MAX_TIMEOUT_S:  # also refuses nan and inf, which timedelta cannot hold
        raise UserError(f"${TIMEOUT_ENV} must be between 0 and {MAX_TIMEOUT_S:.0f} seconds, not {raw!r}")
    return value


def launch_rank() -> int:
    """This process's rank as the launcher set it: known before the process group exists,
    so an error raised before `init` is printed by rank 0 alone too."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def resolve_device(device: str) -> str:
    """`auto`, `cpu`, `cuda` or `cuda:N` → the device to use, checked against this machine
    (the one resolver, for evaluation and training alike)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
        raise UserError(f"--device must be auto, cpu, cuda or cuda:N, not {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}, but no CUDA device is available (use --device cpu or auto)")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UserError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
    return device


def init(device: str) -> World:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on the CPU)."""
    global _WORLD
    if not launched():
        return _WORLD
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return _WORLD
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s()))
    _WORLD = World(dist.get_rank(), dist.get_world_size(), local)
    return _WORLD


def shutdown(sync: bool = True) -> None:
    """Leave the process group; `current()` keeps this rank's identity for the last message.

    With `sync` (every rank reached the same point: success, or an error they agreed on)
    the ranks meet at a barrier first, so none tears down its gloo connections while a peer
    is still inside a collective; that race ended a rank with SIGABRT ("connection closed
    by peer") instead of its exit code. Without it (a rank failed) nobody waits."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if sync:
        try:
            dist.barrier()
        except Exception:  # a peer already left: tearing down is all that is left to do
            pass
    dist.destroy_process_group()


def leave(code: int) -> None:
    """End a torchrun rank with `code` and nothing after it: C++ destructors of the
    distributed runtime at interpreter exit can abort the process (SIGABRT), which torchrun
    would report in place of the exit code. Outside torchrun this returns."""
    import sys

    if not launched() or "torch.distributed" not in sys.modules:
        return
    if code != 0 and launch_rank() != 0:
        # Rank 0 alone prints an error all ranks share: had this rank left at once, torchrun
        # could stop rank 0 (SIGTERM) before its one line was written.
        time.sleep(LEAVE_GRACE_S)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: nothing more can be said on it
            pass
    os._exit(code)


def shard(n: int, world: World | None = None, align: int = 1) -> range:
    """This rank's contiguous block of `n` items. With `align` (the batch size) blocks hold
    whole batches, so every batch has the images it would have in one process, and the
    features are bitwise those of one process (a batch's make-up can change a GEMM's
    rounding)."""
    w = world or current()
    batches = -(-n // align)
    start, stop = w.rank * batches // w.size, (w.rank + 1) * batches // w.size
    return range(min(start * align, n), min(stop * align, n))


def all_gather(obj: Any) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] = [None] * current().size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's object, on every rank."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _outcome(fn: Callable[[], T]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except UserError as e:
        return ("user", str(e))
    except Exception as e:  # noqa: BLE001 - reported to every rank, with the rank that failed
        return ("error", f"{type(e).__name__}: {e}")


def _raise_first_failure(statuses: list[tuple[str, Any]]) -> None:
    for status, value in statuses:
        if status == "user":
            raise UserError(value)
    for rank, (status, value) in enumerate(statuses):
        if status == "error":
            raise DistributedFailure(f"rank {rank} failed: {value}")


def gather_outcome(fn: Callable[[], T]) -> list[T]:
    """Run `fn` on every rank; return every rank's value in rank order, or raise the first
    failure on all ranks alike (a UserError stays a UserError: exit 2 everywhere)."""
    everything = all_gather(_outcome(fn))
    _raise_first_failure(everything)
    return [value for _, value in everything]


def agreed(fn: Callable[[], T]) -> T:
    """Run `fn` on every rank and return this rank's own value (which stays local: only the
    status travels), once every rank has succeeded; else fail on all ranks alike."""
    if current().size == 1:
        return fn()
    status, value = _outcome(fn)
    _raise_first_failure(all_gather((status, None if status == "ok" else value)))
    return value


def sharded_rows(
    n: int, compute: Callable[[range], dict[str, np.ndarray] | None], align: int = 1
) -> dict[str, np.ndarray]:
    """`compute(rows)` over the whole range in one process, or each rank's block (whole
    batches of `align`) gathered in dataset order. `compute` returns None for an empty block."""
    if current().size == 1:
        out = compute(range(n))
        assert out is not None
        return out
    rows = shard(n, align=align)
    _check_tiling(all_gather((n, rows.start, rows.stop)))
    parts = [p for p in gather_outcome(lambda: compute(rows) if len(rows) else None) if p is not None]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _check_tiling(spans: list[tuple[int, int, int]]) -> None:
    """Every rank's block, in rank order, must cover 0..n exactly once. Each rank derives its
    block from its own `--batch-size` (and the row count it sees): ranks given different ones
    once dropped some images and counted others twice, with the right total (60.00 for 100.00,
    exit 0, and cached). Every rank sees the same list, so all of them refuse alike."""
    sizes = {n for n, _, _ in spans}
    blocks = [(a, b) for _, a, b in spans if b > a]
    ends = [0, *(b for _, b in blocks)]
    contiguous = all(a == ends[i] for i, (a, _) in enumerate(blocks))
    if len(sizes) != 1 or not contiguous or ends[-1] != min(sizes):
        shown = ", ".join(f"rank {r}: rows {a}..{b} of {n}" for r, (n, a, b) in enumerate(spans))
        raise UserError(
            f"the ranks split the work differently ({shown}): give every rank the same "
            "--batch-size and the same data"
        )


def interleaved(parts: list[list[Any]]) -> list[Any]:
    """Undo a strided split (rank r held items r, r + W, r + 2W, ...: mmengine's
    DefaultSampler): back to dataset order, so sums run in one process's order."""
    out: list[Any] = []
    for i in range(max((len(p) for p in parts), default=0)):
        out.extend(p[i] for p in parts if i < len(p))
    return out
