"""Dense (per-patch) text-comparable features: the five modes, for open_clip and timm ViTs.

Every mode runs blocks 0..L-2 unchanged and changes only what the last block does
(docs/protocols.md; the sources are SCLIP, ClearCLIP, NACLIP and MaskCLIP):

| mode       | last block                                                         |
|------------|--------------------------------------------------------------------|
| patch-proj | the block as trained                                               |
| maskclip   | x + out_proj(W_v·LN1(x)), then + FFN (the official MaskCLIP)       |
| sclip      | x + out_proj((softmax(qqᵀs) + softmax(kkᵀs))·v), then + FFN        |
| clearclip  | out_proj(softmax(qqᵀs)·v) only: residual and FFN dropped           |
| naclip     | out_proj(softmax(kkᵀs + Ω)·v) only; Ω Gaussian over patches, std 5 |

then the tower's own head on every patch token (prefix tokens dropped). s is head_dim^-0.5.
- open_clip ViT: `ln_post`, then `proj`.
- timm ViT (SigLIP-style, converted big_vision towers): the final norm, then the pooling head
  applied to each patch on its own. For a MAP head that is the MaskCLIP idea once more: a
  patch token as the only key gets attention weight 1, so the head is out_proj(W_v·x), then
  its LayerNorm + MLP residual. Then the trunk's `head` and the tower's projection, if any.
Inputs of any size work: the patch position embeddings are resized bicubically
(align_corners=False, by size, as mmseg's `resize_pos_embed`), prefix tokens' kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from silc_bench.core.errors import UserError, did_you_mean
from silc_bench.models.vit import batch_first, embed_tokens, resize_patch_pos, run_blocks

MODES = ("patch-proj", "maskclip", "sclip", "clearclip", "naclip")
NACLIP_STD = 5.0


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise did_you_mean("dense mode", mode, MODES)


def _heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    n, length, d = t.shape
    return t.reshape(n, length, n_heads, d // n_heads).permute(0, 2, 1, 3)  # (N, H, L, hd)


def gaussian_prior(h: int, w: int, std: float = NACLIP_STD, n_prefix: int = 1) -> torch.Tensor:
    """Ω over (n_prefix + h·w) tokens: exp(-d²/2σ²) between patches (patch units), 0 for prefix tokens."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pts = torch.stack([ys.flatten(), xs.flatten()], dim=1).float()
    d2 = torch.cdist(pts, pts) ** 2
    omega = torch.exp(-d2 / (2 * std**2))
    return F.pad(omega, (n_prefix, 0, n_prefix, 0))


def mix(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mode: str, hw: tuple[int, int], n_prefix: int):  # noqa: ANN201
    """(N, H, L, hd) q, k, v → (N, L, H·hd) before the output projection, for one mode."""
    if mode == "maskclip":
        out = v
    else:
        scale = q.shape[-1] ** -0.5
        if mode == "sclip":
            a = (q @ q.transpose(-1, -2) * scale).softmax(-1) + (k @ k.transpose(-1, -2) * scale).softmax(-1)
        elif mode == "clearclip":
            a = (q @ q.transpose(-1, -2) * scale).softmax(-1)
        elif mode == "naclip":
            omega = gaussian_prior(*hw, n_prefix=n_prefix).to(k.dtype).to(k.device)
            a = (k @ k.transpose(-1, -2) * scale + omega).softmax(-1)
        else:
            raise AssertionError(mode)
        out = a @ v
    n, h, length, hd = out.shape
    return out.permute(0, 2, 1, 3).reshape(n, length, h * hd)


# ------------------------------------------------------------------- open_clip VisionTransformer


def _open_clip_attention(
    block: torch.nn.Module, y: torch.Tensor, mode: str, hw: tuple[int, int]
) -> torch.Tensor:
    attn = block.attn
    if not hasattr(attn, "in_proj_weight") or hasattr(block, "ln_attn"):
        raise UserError(f"dense mode {mode!r} needs a standard attention block (in_proj_weight)")
    q, k, v = F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (_heads(t, attn.num_heads) for t in (q, k, v))
    return attn.out_proj(mix(q, k, v, mode, hw, 1))


@torch.no_grad()
def dense_features(visual: torch.nn.Module, images: torch.Tensor, mode: str) -> torch.Tensor:
    """open_clip ViT: (N, 3, H, W) → (N, D, H/p, W/p) patch embeddings in the text space."""
    check_mode(mode)
    x, (h, w) = embed_tokens(visual, images)
    x = run_blocks(visual, x, stop=-1)
    last = visual.transformer.resblocks[-1]
    if mode == "patch-proj":
        x = last(x) if batch_first(visual) else last(x.transpose(0, 1)).transpose(0, 1)
    else:
        o = _open_clip_attention(last, last.ln_1(x), mode, (h, w))
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


# ------------------------------------------------------------------------- timm VisionTransformer


def timm_tokens(trunk: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int], int]:
    """Patches (+ prefix tokens) + resized position embeddings + `norm_pre` → (N, L, D), (h, w), n_prefix."""
    pe = trunk.patch_embed
    x = pe.proj(images)
    n, c, h, w = x.shape
    x = pe.norm(x.flatten(2).transpose(1, 2))
    n_prefix = int(trunk.num_prefix_tokens)
    g = tuple(int(s) for s in pe.grid_size)
    prefix = [
        t.expand(n, -1, -1) for t in (trunk.cls_token, getattr(trunk, "reg_token", None)) if t is not None
    ]
    pos = trunk.pos_embed.to(x.dtype)
    if getattr(trunk, "no_embed_class", False) or n_prefix == 0:
        x = x + resize_patch_pos(pos[0], g, (h, w))
        x = torch.cat([*[p.to(x.dtype) for p in prefix], x], dim=1)
    else:
        patch_pos = resize_patch_pos(pos[0, n_prefix:], g, (h, w))
        x = torch.cat([*[p.to(x.dtype) for p in prefix], x], dim=1)
        x = x + torch.cat([pos[:, :n_prefix], patch_pos], dim=1)
    return trunk.norm_pre(x), (h, w), n_prefix


def _timm_attention(attn: torch.nn.Module, y: torch.Tensor, mode: str, hw: tuple[int, int], n_prefix: int):  # noqa: ANN202
    if not hasattr(attn, "qkv") or getattr(attn, "qkv", None) is None:
        raise UserError(f"dense mode {mode!r} needs a timm Attention block with a fused qkv")
    n, length, d = y.shape
    qkv = attn.qkv(y).reshape(n, length, 3, attn.num_heads, d // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return attn.proj(attn.norm(mix(q, k, v, mode, hw, n_prefix)))


def map_head_per_token(pool: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """timm's AttentionPoolLatent with each token as its only key: weight 1 on itself."""
    if getattr(pool, "pos_embed", None) is not None:
        raise UserError("the MAP head adds its own position embedding; its per-patch path is not defined")
    d = tokens.shape[-1]
    v = pool.kv(tokens)[..., d:]  # kv's output is [keys | values], heads in (H, hd) order
    x = pool.proj(v)
    return x + pool.mlp(pool.norm(x))


@torch.no_grad()
def timm_dense_features(visual: torch.nn.Module, images: torch.Tensor, mode: str) -> torch.Tensor:
    """open_clip TimmModel with a timm ViT trunk: (N, 3, H, W) → (N, D, H/p, W/p)."""
    check_mode(mode)
    trunk = visual.trunk
    x, (h, w), n_prefix = timm_tokens(trunk, images)
    for blk in list(trunk.blocks)[:-1]:
        x = blk(x)
    last = trunk.blocks[-1]
    if mode == "patch-proj":
        x = last(x)
    else:
        o = _timm_attention(last.attn, last.norm1(x), mode, (h, w), n_prefix)
        if mode in ("maskclip", "sclip"):
            x = x + last.ls1(o)
            x = x + last.ls2(last.mlp(last.norm2(x)))
        else:
            x = o
    tokens = trunk.norm(x)[:, n_prefix:]
    pool = getattr(trunk, "attn_pool", None)
    tokens = map_head_per_token(pool, tokens) if pool is not None else trunk.fc_norm(tokens)
    tokens = visual.head(trunk.head(tokens))
    n, _, d = tokens.shape
    return tokens.reshape(n, h, w, d).permute(0, 3, 1, 2)
