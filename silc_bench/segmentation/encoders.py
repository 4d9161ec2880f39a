"""Window encoders: (N, 3, h, w) normalised windows → (N, Q, h', w') per-query scores.

One per backend. Cosine models (open_clip with a dense mode, PACL) return cosine
similarities on the patch grid; TCL returns sigmoid masks at the window size. The
sliding window resizes whatever comes back to the window, as mmseg does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from silc_bench.models.adapter import VLModel
from silc_bench.segmentation.dense import dense_features

Encoder = Callable[[torch.Tensor], torch.Tensor]


def cosine_encoder(model: VLModel, text: torch.Tensor, mode: str) -> Encoder:
    """open_clip ViT + a dense mode: cos(patch embedding, query embedding)."""
    visual = model.module.visual
    text = text.to(model.device)

    def encode(windows: torch.Tensor) -> torch.Tensor:
        with model.autocast():
            feats = dense_features(visual, windows, mode)
        feats = F.normalize(feats.float(), dim=1)
        return torch.einsum("ndhw,qd->nqhw", feats, text)

    return encode
