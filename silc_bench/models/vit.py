"""The open_clip ViT trunk, written once: token embedding, the block loop, identity attention.

Dense modes (segmentation), PACL's patch tokens and TCL's frozen tower all need the same
pieces of an open_clip `VisionTransformer`: patches + CLS + position embeddings (resized
to the input's grid) + `ln_pre`, then the residual blocks in whatever layout the
transformer uses (`batch_first` or sequence-first). Inputs and outputs here are always
(N, L, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def grid(visual: torch.nn.Module) -> tuple[int, int]:
    """The patch grid the position embeddings were trained for."""
    g = visual.grid_size
    return (g, g) if isinstance(g, int) else (int(g[0]), int(g[1]))


def embed_tokens(visual: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """conv patches + CLS + (bicubically resized) position embeddings + ln_pre → (N, 1+h·w, W), (h, w)."""
    x = visual.conv1(x)
    n, c, h, w = x.shape
    x = x.reshape(n, c, h * w).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(n, -1, -1)
    x = torch.cat([cls, x], dim=1)
    pos = visual.positional_embedding.to(x.dtype)
    gh, gw = grid(visual)
    if (h, w) != (gh, gw):
        pos = torch.cat([pos[:1], resize_patch_pos(pos[1:], (gh, gw), (h, w))[0]], dim=0)
    x = x + pos
    return visual.ln_pre(x), (h, w)


def resize_patch_pos(pos: torch.Tensor, grid_hw: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """(g_h·g_w, C) patch position embeddings → (1, h·w, C), bicubic as mmseg's `resize_pos_embed`."""
    gh, gw = grid_hw
    c = pos.shape[-1]
    if tuple(size) == (gh, gw):
        return pos.reshape(1, gh * gw, c)
    p = pos.reshape(1, gh, gw, c).permute(0, 3, 1, 2)
    p = F.interpolate(p, size=size, mode="bicubic", align_corners=False)
    return p.permute(0, 2, 3, 1).reshape(1, size[0] * size[1], c)


def batch_first(visual: torch.nn.Module) -> bool:
    return getattr(visual.transformer, "batch_first", True)


def run_blocks(visual: torch.nn.Module, x: torch.Tensor, stop: int | None = None) -> torch.Tensor:
    """(N, L, D) through `resblocks[:stop]` (all of them by default), in the tower's own layout."""
    first = batch_first(visual)
    x = x if first else x.transpose(0, 1)
    for blk in list(visual.transformer.resblocks)[:stop]:
        x = blk(x)
    return x if first else x.transpose(0, 1)


def identity_attention(block: torch.nn.Module, x: torch.Tensor, first: bool = True) -> torch.Tensor:
    """An open_clip block with each token attending only to itself (MaskCLIP); the residual
    and MLP are kept. `x` is (N, L, D) whatever the block's own layout is."""
    n = x.shape[1]
    mask = torch.full((n, n), float("-inf"), dtype=x.dtype, device=x.device).fill_diagonal_(0.0)
    if first:
        return block(x, attn_mask=mask)
    return block(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)
