"""Dense (per-patch) text-comparable features from an open_clip ViT: the five modes.

Every mode runs blocks 0..L-2 unchanged and changes only what the last block does
(PROTOCOLS.md §4; the sources are SCLIP, ClearCLIP, NACLIP and MaskCLIP):

| mode       | last block                                                         |
|------------|--------------------------------------------------------------------|
| patch-proj | the block as trained                                               |
| maskclip   | x + out_proj(W_v·LN1(x)), then + FFN (the official MaskCLIP)       |
| sclip      | x + out_proj((softmax(qqᵀs) + softmax(kkᵀs))·v), then + FFN        |
| clearclip  | out_proj(softmax(qqᵀs)·v) only: residual and FFN dropped           |
| naclip     | out_proj(softmax(kkᵀs + Ω)·v) only; Ω Gaussian over patches, std 5 |

then `ln_post` and `proj` on every patch token (the CLS output is dropped). s is
head_dim^-0.5. Inputs of any size work: the patch position embeddings are resized
bicubically (align_corners=False, by size, as mmseg's `resize_pos_embed`), the CLS one kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from silc_bench.errors import UserError
from silc_bench.models.vit import batch_first, embed_tokens, run_blocks

MODES = ("patch-proj", "maskclip", "sclip", "clearclip", "naclip")
NACLIP_STD = 5.0


def _heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    n, length, d = t.shape
    return t.reshape(n, length, n_heads, d // n_heads).permute(0, 2, 1, 3)  # (N, H, L, hd)


def gaussian_prior(h: int, w: int, std: float = NACLIP_STD) -> torch.Tensor:
    """Ω over (1 + h·w) tokens: exp(-d²/2σ²) between patches (patch units), 0 for CLS."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pts = torch.stack([ys.flatten(), xs.flatten()], dim=1).float()
    d2 = torch.cdist(pts, pts) ** 2
    omega = torch.exp(-d2 / (2 * std**2))
    return F.pad(omega, (1, 0, 1, 0))


def _custom_attention(
    block: torch.nn.Module, y: torch.Tensor, mode: str, hw: tuple[int, int]
) -> torch.Tensor:
    attn = block.attn
    if not hasattr(attn, "in_proj_weight") or hasattr(block, "ln_attn"):
        raise UserError(f"dense mode {mode!r} needs a standard attention block (in_proj_weight)")
    n_heads = attn.num_heads
    q, k, v = F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    if mode == "maskclip":
        return attn.out_proj(v)
    q, k, v = (_heads(t, n_heads) for t in (q, k, v))
    scale = q.shape[-1] ** -0.5
    if mode == "sclip":
        a = (q @ q.transpose(-1, -2) * scale).softmax(-1) + (k @ k.transpose(-1, -2) * scale).softmax(-1)
    elif mode == "clearclip":
        a = (q @ q.transpose(-1, -2) * scale).softmax(-1)
    elif mode == "naclip":
        omega = gaussian_prior(*hw).to(k.dtype).to(k.device)
        a = (k @ k.transpose(-1, -2) * scale + omega).softmax(-1)
    else:
        raise AssertionError(mode)
    out = (a @ v).permute(0, 2, 1, 3).reshape(y.shape)
    return attn.out_proj(out)


@torch.no_grad()
def dense_features(visual: torch.nn.Module, images: torch.Tensor, mode: str) -> torch.Tensor:
    """(N, 3, H, W) → (N, D, H/p, W/p) patch embeddings in the text space (not normalised)."""
    if mode not in MODES:
        from silc_bench.errors import did_you_mean

        raise did_you_mean("dense mode", mode, MODES)
    x, (h, w) = embed_tokens(visual, images)
    x = run_blocks(visual, x, stop=-1)
    last = visual.transformer.resblocks[-1]
    if mode == "patch-proj":
        x = last(x) if batch_first(visual) else last(x.transpose(0, 1)).transpose(0, 1)
    else:
        o = _custom_attention(last, last.ln_1(x), mode, (h, w))
        if mode in ("maskclip", "sclip"):
            x = x + last.ls_1(o)
            x = x + last.ls_2(last.mlp(last.ln_2(x)))
        else:
            x = o
    tokens = visual.ln_post(x[:, 1:])
    if visual.proj is not None:
        tokens = tokens @ visual.proj
    n, _, d = tokens.shape
    return tokens.reshape(n, h, w, d).permute(0, 3, 1, 2)
