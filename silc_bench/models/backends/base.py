"""Backends as objects: what a task may ask of a model's towers.

`VLBackend` is the protocol every task and the segmentor talk to:
- `encode_text(tokens)` and `image_features(images)` (pooled `pre_logits` and the `embed`
  the text is compared with, from one forward so zero- and few-shot share one cached pass);
- `dense_features(images, mode)`: patch embeddings in the text space, and the grid;
- `window_encoder(text, mode, options)`: sliding-window scores per query (cosine by
  default; TCL returns sigmoid masks), with the options it does not support refused.

The backends themselves live one per module beside this one, and are named in the table
of `silc_bench.models.backends` (imported only when a model asks for them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from silc_bench.core.errors import UserError
from silc_bench.models import dense

Encoder = Callable[[torch.Tensor], torch.Tensor]
TOWER_OPTIONS = ("pamr", "tcl_ensemble")  # window-encoder options only some backends support


class VLBackend:
    """A loaded model's towers; `parts` are backend-specific modules (TCL masker, PACL embedder)."""

    name: ClassVar[str] = ""  # its name in the BACKENDS table
    score: ClassVar[str] = "cosine"  # what window_encoder returns: cosine similarities or sigmoid masks
    modes: ClassVar[tuple[str, ...]] = dense.MODES
    options: ClassVar[tuple[str, ...]] = ()  # TOWER_OPTIONS it supports

    def __init__(self, module: torch.nn.Module, parts: dict[str, torch.nn.Module] | None = None) -> None:
        self.module = module
        self.parts = parts or {}

    @property
    def visual(self) -> torch.nn.Module:
        return self.module.visual

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.encode_text(tokens)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_features(images)["embed"]

    def image_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def dense_features(self, images: torch.Tensor, mode: str) -> tuple[torch.Tensor, tuple[int, int]]:
        raise NotImplementedError

    def resolve_mode(self, requested: str | None, default: str) -> str:
        """The dense mode a run uses; a mode this backend cannot apply stops the run (exit 2)."""
        mode = requested or default
        if mode not in self.modes:
            if requested and len(self.modes) == 1:
                raise UserError(
                    f"--dense-mode {requested} does not apply to backend {self.name!r}: "
                    f"its segmentation path is fixed ({self.modes[0]})"
                )
            if requested:
                dense.check_mode(requested)
                raise UserError(f"--dense-mode {requested} does not apply to backend {self.name!r}")
            return self.modes[0]
        return mode

    def check_options(self, options: dict[str, Any]) -> None:
        for opt in TOWER_OPTIONS:
            if options.get(opt) and opt not in self.options:
                flag = "--" + opt.replace("_", "-")
                raise UserError(f"{flag} applies to TCL's masks only (this model's backend is {self.name!r})")

    def window_encoder(self, text: torch.Tensor, mode: str, options: dict[str, Any], autocast) -> Encoder:  # noqa: ANN001
        """Windows (N, 3, h, w) → (N, Q, h', w') cosine of each patch to each query."""
        self.check_options(options)
        text = text.to(next(self.module.parameters()).device)

        def encode(windows: torch.Tensor) -> torch.Tensor:
            with autocast():
                feats, _ = self.dense_features(windows, mode)
            feats = F.normalize(feats.float(), dim=1)
            return torch.einsum("ndhw,qd->nqhw", feats, text)

        return encode
