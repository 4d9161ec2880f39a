"""The one model adapter every task talks to.

A task never touches open_clip (or TCL, PACL, timm towers) directly: it asks a `VLModel`
for image features, text embeddings, the tokenizer and the preprocessing. What differs
between towers lives in the `VLBackend` object (models/backends/), so the tasks and the
cache stay unchanged when a backend is added.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from silc_bench.models.backends.base import VLBackend
from silc_bench.models.execution import ExecutionRecord
from silc_bench.models.preprocess import Preprocess

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Towers:
    """The built parts of a model: the module, its backend and its tokenizer. Either given,
    or made by `build` on first use (models/deferred.py: a run whose every feature is cached
    never needs them). Shared by the copies `dataclasses.replace` makes of a VLModel, so a
    copy with another preprocessing never builds the model a second time."""

    module: Any = None
    backend: Any = None
    tokenizer: Any = None
    build: Callable[[], Towers] | None = None

    def ready(self) -> Towers:
        if self.build is not None:
            made = self.build()
            self.module, self.backend, self.tokenizer = made.module, made.backend, made.tokenizer
            self.build = None
        return self


@dataclass
class VLModel:
    """A two-tower model plus everything needed to evaluate it reproducibly (its towers are
    built already, or on first use: `Towers`)."""

    ref: str  # --model as typed
    name: str  # registry name or open_clip:ARCH
    variant: str | None
    checkpoint_sha256: str
    towers: Towers  # module, backend, tokenizer (below), built now or on first use
    preprocess: Preprocess
    dense_mode: str
    device: torch.device
    precision: str = "fp32"
    info: dict[str, Any] = field(default_factory=dict)  # arch, weights, tokenizer: for results
    identity: dict[str, Any] = field(default_factory=dict)  # weights sha256 + registry settings
    execution: ExecutionRecord = field(default_factory=ExecutionRecord)  # how it ran, for the result
    execution_options: Any = None  # models.execution.Execution, when set
    text_encoding: str = "trimmed"  # asked for: trimmed where the tower allows it (text_encoding.py), or full
    text_trimmable: bool = False  # the text tower allows trimming (text_encoding.trimmable), known unbuilt

    @property
    def module(self) -> torch.nn.Module:
        """An open_clip CLIP / CustomTextCLIP, eval mode."""
        return self.towers.ready().module

    @property
    def backend(self) -> VLBackend:
        """The towers' protocol: image features, dense features, window encoder."""
        return self.towers.ready().backend

    @property
    def tokenizer(self) -> Callable[[list[str]], torch.Tensor]:
        return self.towers.ready().tokenizer

    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts)

    @property
    def text_encoding_used(self) -> str:
        """`trimmed` only where it was asked for and the tower provably allows it."""
        return "trimmed" if self.text_encoding == "trimmed" and self.text_trimmable else "full"

    @torch.no_grad()
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unnormalised text embeddings, float32 (each batch cut to its longest text where the
        tower allows it: the same numbers up to float rounding, several times faster)."""
        with self.autocast():
            tokens = tokens.to(self.device)
            if self.text_encoding_used == "trimmed":
                from silc_bench.models.text_encoding import encode_by_length

                return encode_by_length(self.module, tokens).float()
            return self.module.encode_text(tokens).float()

    @property
    def extras(self) -> dict[str, torch.nn.Module]:
        """The backend's own parts (TCL masker, PACL embedder): what an open_clip export leaves out."""
        return self.backend.parts

    @torch.no_grad()
    def image_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """`pre_logits` (pooled, after the final norm, before the projection) and `embed`.

        One forward gives both, so zero-shot and few-shot share one cached pass.
        """
        if (problem := image_size_problem(self.backend, tuple(images.shape[-2:]))) is not None:
            from silc_bench.core.errors import UserError

            raise UserError(f"model {self.name!r}: {problem}")
        x = images.to(self.device, non_blocking=True)  # pinned by the loader on CUDA
        if self.execution.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            try:
                feats = self.backend.image_features(x)
            except Exception as e:
                _compile_failure(self.execution, e)
                raise
        if self.execution.compile.get("requested"):
            from silc_bench.models.execution import verify_compiled

            verify_compiled(self)
        return {k: v.float() for k, v in feats.items()}


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def image_size_problem(backend: VLBackend, hw: tuple[int, int]) -> str | None:
    """Why the image tower's whole-image forward cannot take (H, W) images (None: it can).

    open_clip's VisionTransformer adds its position embeddings as trained, with no resizing
    at forward time, so the patch grid must be the trained one; a timm trunk needs its
    `img_size` unless built with `dynamic_img_size`. The dense (segmentation) path resizes
    the embeddings per window (models/vit.py) and never comes here."""
    visual = backend.visual
    trunk = getattr(visual, "trunk", None)
    if trunk is not None:  # timm
        embed = getattr(trunk, "patch_embed", None)
        if getattr(trunk, "dynamic_img_size", False) or getattr(embed, "img_size", None) is None:
            return None
        want = _pair(embed.img_size)
        fits = tuple(hw) == want
        why = "a timm trunk built without dynamic_img_size"
    elif hasattr(visual, "_embeds") and getattr(visual, "image_size", None) is not None:
        want, patch, grid = _pair(visual.image_size), _pair(visual.patch_size), _pair(visual.grid_size)
        fits = (hw[0] // patch[0], hw[1] // patch[1]) == grid
        why = "open_clip's VisionTransformer does not resize its position embeddings for a whole image"
    else:
        return None
    if fits:
        return None
    return (
        f"preprocess.size {hw[0] if hw[0] == hw[1] else list(hw)} gives {hw[0]}x{hw[1]} images, "
        f"but its image tower takes {want[0]}x{want[1]} ({why}); "
        f"set preprocess.size: {want[0]} in its registry entry "
        "(segmentation resizes the position embeddings per window and is not affected)"
    )


def _compile_failure(record: ExecutionRecord, e: Exception) -> None:
    """A first compiled forward that fails for want of a compiler or backend is the user's
    setup, not a bug: one line, exit 2 (out-of-memory goes on to the batch halving)."""
    from silc_bench.core.errors import UserError, first_line

    c = record.compile
    if (
        not c.get("requested")
        or c.get("took_effect") is not None
        or isinstance(e, (UserError, torch.cuda.OutOfMemoryError))
    ):
        return
    first = first_line(e)
    raise UserError(
        f"--compile: torch.compile ({c.get('backend')}) failed: {type(e).__name__}: {first[:300]}; "
        "run without --compile"
    ) from None
