"""PACL (Mukhoti et al., CVPR 2023): a vision embedder on the patch tokens of a frozen CLIP.

PACL has no official code; the SILC authors reproduced it from the PACL authors'
instructions, and so do we (docs/protocols.md): the embedder is Linear + a residual
Linear→ReLU→Linear, applied to the frozen CLIP's patch tokens (after `ln_post`, before
`proj`). Segmentation is the per-patch cosine to each class, upsampled, argmax. The PACL
paper's test-time thresholding with labels is not zero-shot and is not done.

Checkpoint layout: the frozen CLIP's keys as usual plus the embedder under `pacl.`
(`pacl.proj.weight`, `pacl.mlp.0.weight`, `pacl.mlp.2.weight`, with biases). The
training stack writes this layout.
"""

from __future__ import annotations

import torch

from silc_bench.models.backends.open_clip import OpenCLIPViT
from silc_bench.models.vit import embed_tokens, run_blocks

PREFIX = "pacl."


class PACLEmbedder(torch.nn.Module):
    def __init__(self, width: int, dim: int) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(width, dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(), torch.nn.Linear(dim, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.proj(tokens)
        return e + self.mlp(e)


def patch_tokens(visual: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """The frozen CLIP's patch tokens after `ln_post`: (N, h·w, W), and the grid (h, w)."""
    x, hw = embed_tokens(visual, images)
    return visual.ln_post(run_blocks(visual, x)[:, 1:]), hw


def split_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(CLIP keys, embedder keys without the `pacl.` prefix)."""
    clip = {k: v for k, v in sd.items() if not k.startswith(PREFIX)}
    emb = {k[len(PREFIX) :]: v for k, v in sd.items() if k.startswith(PREFIX)}
    return clip, emb


class PACLBackend(OpenCLIPViT):
    """The frozen open_clip CLIP plus the embedder (`parts["pacl"]`) on its patch tokens."""

    name = "pacl"

    modes = ("pacl",)

    def dense_features(self, images: torch.Tensor, mode: str) -> tuple[torch.Tensor, tuple[int, int]]:
        tokens, (h, w) = patch_tokens(self.visual, images)
        emb = self.parts["pacl"](tokens)  # (N, h·w, D)
        return emb.transpose(1, 2).reshape(len(images), -1, h, w), (h, w)
