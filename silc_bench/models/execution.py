"""How the image tower runs, apart from what it computes: torch.compile, channels-last,
and the count of CUDA out-of-memory halvings. Every choice is recorded in the result
(`env.execution`); compile and channels-last also enter the run key and the feature-cache
key when they are on, since fused kernels may round differently.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch

from silc_bench.core.console import warn
from silc_bench.core.errors import UserError, first_line

COMPILE_BACKEND_ENV = "SILC_BENCH_COMPILE_BACKEND"  # tests use "eager": dynamo capture without a C++ build


@dataclass(frozen=True)
class Execution:
    compile: bool = False
    channels_last: bool = False
    decode: str = "cpu"  # "gpu": torchvision.io.decode_jpeg on the model's device (data/gpu_decode.py)

    def key(self) -> dict[str, Any]:
        """The part of the run key: empty when everything is default (old keys stay valid).
        `compile` is the backend's name: eager capture and inductor kernels may round apart."""
        default = Execution()
        out = {k: v for k, v in asdict(self).items() if v != getattr(default, k)}
        if out.get("compile"):
            out["compile"] = compile_backend()
        return out


def compile_backend() -> str:
    return os.environ.get(COMPILE_BACKEND_ENV, "inductor")


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def apply(model: Any, ex: Execution) -> None:
    """Set up `model` (a VLModel) for `ex` and start its `execution` record."""
    rec: dict[str, Any] = {
        "compile": {"requested": ex.compile},
        "channels_last": ex.channels_last,
        "pinned_memory": model.device.type == "cuda",
        "oom_halvings": 0,
        "decode": ex.decode,
    }
    if ex.channels_last:
        model.module.to(memory_format=torch.channels_last)
    if ex.compile:
        backend = compile_backend()
        rec["compile"].update(backend=backend, graphs_before=_graphs())
        try:
            model.backend.image_features = torch.compile(model.backend.image_features, backend=backend)
        except Exception as e:  # an unknown backend name ($SILC_BENCH_COMPILE_BACKEND)
            first = first_line(e) or type(e).__name__
            raise UserError(f"--compile: ${COMPILE_BACKEND_ENV}={backend}: {first}") from None
    model.execution = rec
    model.execution_options = ex


def verify_compiled(model: Any) -> None:
    """After the first compiled forward: did dynamo capture a graph? Recorded either way."""
    c = model.execution.get("compile", {})
    if not c.get("requested") or c.get("took_effect") is not None:  # None: not known yet
        return
    c.pop("why_unknown", None)
    c["took_effect"] = _graphs() > c.get("graphs_before", 0)
    if not c["took_effect"]:
        warn("--compile: torch.compile captured no graph; the image tower ran eagerly")
