"""open_clip's own VisionTransformer towers (OpenAI/LAION CLIP, the shipped tiny models)."""

from __future__ import annotations

import torch

from silc_bench.core.errors import UserError
from silc_bench.models import dense
from silc_bench.models.backends.base import VLBackend


class OpenCLIPViT(VLBackend):
    """open_clip's own VisionTransformer (OpenAI/LAION CLIP, our tiny models)."""

    name = "open_clip"

    def image_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        visual = self.visual
        if not (hasattr(visual, "_pool") and hasattr(visual, "proj")):
            raise UserError(
                f"backend 'open_clip' needs an open_clip VisionTransformer, not {type(visual).__name__}"
            )
        pooled, _ = visual._pool(visual.transformer(visual._embeds(images)))
        embed = pooled @ visual.proj if visual.proj is not None else pooled
        return {"pre_logits": pooled, "embed": embed}

    def dense_features(self, images: torch.Tensor, mode: str) -> tuple[torch.Tensor, tuple[int, int]]:
        feats = dense.dense_features(self.visual, images, mode)
        return feats, tuple(feats.shape[-2:])
