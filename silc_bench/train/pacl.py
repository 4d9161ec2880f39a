"""PACL (Mukhoti et al., 2023) training: an embedder on a frozen CLIP's patch tokens.

The SILC authors reproduced PACL from its authors' instructions (supplementary §5), and
so does this: the frozen CLIP comes from `pacl.base_weights` (an open_clip state dict or a
bundle with `pacl.base_variant`) in the open_clip architecture `pacl.base_arch`. The
embedder is `silc_bench.models.backends.pacl.PACLEmbedder` (Linear + residual Linear→ReLU→Linear)
on the patch tokens after `ln_post`, before `proj`, so evaluation reads exactly what is
trained. Loss, per (image i, caption j): patch–caption cosines → softmax over patches →
the patch-weighted sum of i's patch embeddings → cosine with caption j, times the frozen
CLIP's logit scale → symmetric InfoNCE. Only the embedder learns; the text tower is frozen.
The input is the first global crop (the same MultiCrop, one global crop, no locals).

Export: the frozen CLIP's keys plus the embedder's under `pacl.`, as `backend: pacl`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from silc_bench.core.errors import UserError
from silc_bench.models.backends.pacl import PREFIX, PACLEmbedder, patch_tokens
from silc_bench.models.weights import load_into, read_state_dict, select_variant
from silc_bench.train.augment import MultiCrop
from silc_bench.train.config import TrainConfig
from silc_bench.train.losses import symmetric_ce
from silc_bench.train.model import VARIANTS, build_clip, image_size, tokenizer_for


def pacl_logits(patches: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """(B images × B captions) logits from patch embeddings (B, P, D) and captions (B, D)."""
    patches = F.normalize(patches, dim=-1)
    text = F.normalize(text, dim=-1)
    weights = torch.einsum("bpd,td->btp", patches, text).softmax(dim=-1)  # over patches
    pooled = F.normalize(torch.einsum("btp,bpd->btd", weights, patches), dim=-1)
    return logit_scale * torch.einsum("btd,td->bt", pooled, text)


class PACLObjective:
    """The frozen CLIP and the trainable embedder, behind the loop's objective interface."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        p = cfg.pacl
        assert p is not None
        self.cfg = cfg
        self.device = device
        self.arch = {"open_clip": p.base_arch}
        clip = build_clip(self.arch)
        sd = read_state_dict(p.base_weights)
        if any(k.startswith(tuple(f"{v}." for v in VARIANTS)) for k in sd):
            if p.base_variant is None:
                raise UserError(
                    f"pacl.base_weights {p.base_weights} is a teacher/student bundle: set pacl.base_variant"
                )
            sd = select_variant(sd, p.base_variant, VARIANTS)
        load_into(clip, sd, f"pacl.base_weights {p.base_weights}")
        clip.requires_grad_(False)
        self.clip = clip.eval().to(device)
        self.tokenizer = tokenizer_for(self.arch)
        self.image_size = image_size(clip)
        visual = clip.visual
        self.embedder = PACLEmbedder(visual.conv1.out_channels, visual.proj.shape[1]).to(device)
        self.crops = MultiCrop(
            image_size=self.image_size,
            local_size=self.image_size,
            n_global=1,
            n_local=0,
            global_scale=cfg.objective.global_scale,
        )

    def trainable(self) -> torch.nn.Module:
        return self.embedder

    def loss(
        self, module: torch.nn.Module, batch: dict[str, Any], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        images = batch["globals"][:, 0].to(self.device)
        text = self.tokenizer(list(batch["caption"])).to(self.device)
        with torch.no_grad():
            tokens, _ = patch_tokens(self.clip.visual, images)
            text_emb = self.clip.encode_text(text)
            scale = self.clip.logit_scale.exp()
        loss = symmetric_ce(pacl_logits(module(tokens), text_emb, scale))
        return loss, {"pacl": float(loss.detach())}

    def after_update(self) -> None:
        pass

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        pass

    def export_tensors(self) -> dict[str, torch.Tensor]:
        out = dict(self.clip.state_dict())
        out.update({f"{PREFIX}{k}": v for k, v in self.embedder.state_dict().items()})
        return out

    def entry(self) -> dict[str, Any]:
        return {"arch": self.arch, "backend": "pacl"}

    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", 77))
