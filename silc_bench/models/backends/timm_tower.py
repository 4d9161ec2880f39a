"""A timm ViT inside open_clip's TimmModel: SigLIP-style towers and converted big_vision
checkpoints."""

from __future__ import annotations

import torch

from silc_bench.models import dense
from silc_bench.models.backends.base import VLBackend


class TimmTower(VLBackend):
    """An open_clip TimmModel around a timm ViT: SigLIP-style towers and converted big_vision
    checkpoints (MAP, GAP or class-token pooling, no class token required)."""

    name = "timm-tower"

    def image_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        trunk = self.visual.trunk
        pooled = trunk.forward_head(trunk.forward_features(images), pre_logits=True)
        return {"pre_logits": pooled, "embed": self.visual.head(trunk.head(pooled))}

    def dense_features(self, images: torch.Tensor, mode: str) -> tuple[torch.Tensor, tuple[int, int]]:
        feats = dense.timm_dense_features(self.visual, images, mode)
        return feats, tuple(feats.shape[-2:])
