"""How the towers run, apart from what they compute: torch.compile, channels-last, the
decode path and the CUDA out-of-memory fallbacks (`Execution`, the options; `ExecutionRecord`,
what happened). Every choice is recorded in the result
(`env.execution`); compile and channels-last also enter the run key and the feature-cache
key when they are on, since fused kernels may round differently.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
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


@dataclass
class ExecutionRecord:
    """How one evaluation ran, apart from what it computed: the one record every part that
    changes how the towers run reports to (the loader, the OOM fallbacks, compile, the
    segmentor), written into the result as `env.execution`. `merge` makes one record of
    every rank's under torchrun. A model that was never set up records nothing (`{}`)."""

    started: bool = False
    compile: dict[str, Any] = field(default_factory=lambda: {"requested": False})
    channels_last: bool = False
    pinned_memory: bool = False
    decode: str = "cpu"
    oom_halvings: int = 0  # image batches split in two after a CUDA out-of-memory
    oom_batch_cap: int | None = None  # the batch size that fitted, kept for later batches
    window_oom_fallbacks: int = 0  # zs-seg: window batches halved after an out-of-memory
    window_batch: int | None = None  # zs-seg: the window batch it fell back to
    decode_fallback: str | None = None
    decoded_on: str | None = None

    @classmethod
    def start(cls, ex: Execution, device: torch.device) -> ExecutionRecord:
        return cls(
            started=True,
            compile={"requested": ex.compile},
            channels_last=ex.channels_last,
            pinned_memory=device.type == "cuda",
            decode=ex.decode,
        )

    def begin_evaluation(self) -> None:
        """A new dataset: what the last evaluation noted is not this one's."""
        self.oom_halvings = self.window_oom_fallbacks = 0
        self.window_batch = self.decode_fallback = self.decoded_on = None

    def note_oom(self, batch_cap: int) -> None:
        self.oom_halvings += 1
        self.oom_batch_cap = batch_cap

    def note_window_oom(self, fallbacks: int, window_batch: int | None) -> None:
        if fallbacks:
            self.window_oom_fallbacks += fallbacks
            self.window_batch = window_batch

    def note_decode(self, on: str | None = None, fallback: str | None = None) -> None:
        self.decoded_on = on or self.decoded_on
        self.decode_fallback = fallback or self.decode_fallback

    @classmethod
    def merge(cls, records: list[ExecutionRecord]) -> ExecutionRecord:
        """Every rank's record as one: OOM counts summed, the smallest batch caps, compile
        taken effect if any rank compiled a graph (an empty block never ran the tower)."""
        merged = copy.deepcopy(records[0])
        if not merged.started:
            return merged
        merged.oom_halvings = sum(r.oom_halvings for r in records)
        merged.window_oom_fallbacks = sum(r.window_oom_fallbacks for r in records)
        for name in ("oom_batch_cap", "window_batch"):
            values = [getattr(r, name) for r in records if getattr(r, name)]
            setattr(merged, name, min(values) if values else None)
        seen = [r.compile["took_effect"] for r in records if r.compile.get("took_effect") is not None]
        if seen:
            merged.compile["took_effect"] = any(seen)
            merged.compile.pop("why_unknown", None)
        for name in ("decode_fallback", "decoded_on"):
            setattr(merged, name, next((getattr(r, name) for r in records if getattr(r, name)), None))
        return merged

    def as_dict(self) -> dict[str, Any]:
        """The result's `env.execution`: the keys it always had, the rest only when set."""
        if not self.started:
            return {}
        out: dict[str, Any] = {
            "compile": copy.deepcopy(self.compile),
            "channels_last": self.channels_last,
            "pinned_memory": self.pinned_memory,
            "oom_halvings": self.oom_halvings,
            "decode": self.decode,
        }
        optional = ("oom_batch_cap", "window_oom_fallbacks", "window_batch", "decode_fallback", "decoded_on")
        for name in optional:
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


def compile_backend() -> str:
    return os.environ.get(COMPILE_BACKEND_ENV, "inductor")


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def apply(model: Any, ex: Execution) -> None:
    """Set up `model` (a VLModel) for `ex` and start its `execution` record."""
    rec = ExecutionRecord.start(ex, model.device)
    if ex.channels_last:
        model.module.to(memory_format=torch.channels_last)
    if ex.compile:
        backend = compile_backend()
        rec.compile.update(backend=backend, graphs_before=_graphs())
        try:
            model.backend.image_features = torch.compile(model.backend.image_features, backend=backend)
        except Exception as e:  # an unknown backend name ($SILC_BENCH_COMPILE_BACKEND)
            first = first_line(e) or type(e).__name__
            raise UserError(f"--compile: ${COMPILE_BACKEND_ENV}={backend}: {first}") from None
    model.execution = rec
    model.execution_options = ex


def verify_compiled(model: Any) -> None:
    """After the first compiled forward: did dynamo capture a graph? Recorded either way."""
    c = model.execution.compile
    if not c.get("requested") or c.get("took_effect") is not None:  # None: not known yet
        return
    c.pop("why_unknown", None)
    c["took_effect"] = _graphs() > c.get("graphs_before", 0)
    if not c["took_effect"]:
        warn("--compile: torch.compile captured no graph; the image tower ran eagerly")
