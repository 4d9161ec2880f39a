"""big_vision parameter tree → open_clip state dict, and which open_clip architecture fits.

Key mapping (facts from big_vision's flax modules and open_clip/timm's torch modules):
- conv kernel (p, p, 3, D) → (D, 3, p, p); dense kernels (in, out) → (out, in);
- attention kernels (D, H, hd) → rows of a (H·hd, D) matrix, query/key/value stacked into
  timm's `qkv` / open_clip's `in_proj_weight`; `out` (H, hd, D) → (D, H·hd);
- the MAP head's key/value go to timm's `attn_pool.kv`, its probe to `attn_pool.latent`;
- `t` (log temperature) → `logit_scale`, `b` → `logit_bias`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from silc_bench.convert.layout import TwoTower
from silc_bench.convert.npz_tree import Encoder, NpzTree, find_encoder
from silc_bench.models.arch import open_clip_config, open_clip_names

TIMM_POOL = {"map": "map", "gap": "avg", "tok": "token"}
A = "MultiHeadDotProductAttention_0/"


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32, order="C"))  # copies; 0-d stays 0-d


def _qkv_rows(kernel: np.ndarray) -> np.ndarray:
    """(D, H, hd) → (H·hd, D)."""
    return kernel.reshape(kernel.shape[0], -1).T


def _out_cols(kernel: np.ndarray) -> np.ndarray:
    """(H, hd, D) → (D, H·hd)."""
    return kernel.reshape(-1, kernel.shape[-1]).T


# big_vision block parameter → (timm name, open_clip text-tower name)
_NORMS = {"LayerNorm_0": ("norm1", "ln_1"), "LayerNorm_1": ("norm2", "ln_2")}
_DENSE = {"Dense_0": ("mlp.fc1", "mlp.c_fc"), "Dense_1": ("mlp.fc2", "mlp.c_proj")}


def _blocks(enc: Encoder, timm: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """(name within `blocks.`/`resblocks.`, tensor), parameter by parameter over all blocks,
    so a scanned array is read once."""
    pick = 0 if timm else 1
    qkv = ("attn.qkv.weight", "attn.qkv.bias") if timm else ("attn.in_proj_weight", "attn.in_proj_bias")
    out = "attn.proj" if timm else "attn.out_proj"
    for src, names in _NORMS.items():
        for w, suffix in (("scale", "weight"), ("bias", "bias")):
            for i, v in enumerate(enc.stacked(f"{src}/{w}")):
                yield f"{i}.{names[pick]}.{suffix}", _t(v)
    kernels = [enc.stacked(f"{A}{n}/kernel") for n in ("query", "key", "value")]
    for i, parts in enumerate(zip(*kernels)):
        yield f"{i}.{qkv[0]}", _t(np.concatenate([_qkv_rows(p) for p in parts]))
    del kernels
    biases = [enc.stacked(f"{A}{n}/bias") for n in ("query", "key", "value")]
    for i, parts in enumerate(zip(*biases)):
        yield f"{i}.{qkv[1]}", _t(np.concatenate([p.reshape(-1) for p in parts]))
    for i, v in enumerate(enc.stacked(f"{A}out/kernel")):
        yield f"{i}.{out}.weight", _t(_out_cols(v))
    for i, v in enumerate(enc.stacked(f"{A}out/bias")):
        yield f"{i}.{out}.bias", _t(v)
    for src, names in _DENSE.items():
        for i, v in enumerate(enc.stacked(f"MlpBlock_0/{src}/kernel")):
            yield f"{i}.{names[pick]}.weight", _t(v.T)
        for i, v in enumerate(enc.stacked(f"MlpBlock_0/{src}/bias")):
            yield f"{i}.{names[pick]}.bias", _t(v)


def state_dict(tree: NpzTree, spec: TwoTower) -> dict[str, torch.Tensor]:
    """The open_clip CustomTextCLIP (timm image trunk + open_clip text) state dict."""
    sd: dict[str, torch.Tensor] = {}
    v = "visual.trunk."
    sd[v + "patch_embed.proj.weight"] = _t(tree["img/embedding/kernel"].transpose(3, 2, 0, 1))
    sd[v + "patch_embed.proj.bias"] = _t(tree["img/embedding/bias"])
    sd[v + "pos_embed"] = _t(tree["img/pos_embedding"])
    if spec.pooling == "tok":
        sd[v + "cls_token"] = _t(tree["img/cls"])
    for k, t in _blocks(find_encoder(tree, "img/Transformer/"), timm=True):
        sd[v + "blocks." + k] = t
    sd[v + "norm.weight"] = _t(tree["img/Transformer/encoder_norm/scale"])
    sd[v + "norm.bias"] = _t(tree["img/Transformer/encoder_norm/bias"])
    if spec.pooling == "map":
        h, p = "img/MAPHead_0/", v + "attn_pool."
        sd[p + "latent"] = _t(tree[h + "probe"])
        sd[p + "q.weight"] = _t(_qkv_rows(tree[f"{h}{A}query/kernel"]))
        sd[p + "q.bias"] = _t(tree[f"{h}{A}query/bias"].reshape(-1))
        sd[p + "kv.weight"] = _t(
            np.concatenate([_qkv_rows(tree[f"{h}{A}{n}/kernel"]) for n in ("key", "value")])
        )
        sd[p + "kv.bias"] = _t(
            np.concatenate([tree[f"{h}{A}{n}/bias"].reshape(-1) for n in ("key", "value")])
        )
        sd[p + "proj.weight"] = _t(_out_cols(tree[f"{h}{A}out/kernel"]))
        sd[p + "proj.bias"] = _t(tree[f"{h}{A}out/bias"])
        sd[p + "norm.weight"] = _t(tree[h + "LayerNorm_0/scale"])
        sd[p + "norm.bias"] = _t(tree[h + "LayerNorm_0/bias"])
        for r in range(2):
            sd[p + f"mlp.fc{r + 1}.weight"] = _t(tree[f"{h}MlpBlock_0/Dense_{r}/kernel"].T)
            sd[p + f"mlp.fc{r + 1}.bias"] = _t(tree[f"{h}MlpBlock_0/Dense_{r}/bias"])
    if spec.img_head:
        sd[v + "head.weight"] = _t(tree["img/head/kernel"].T)
        sd[v + "head.bias"] = _t(tree["img/head/bias"])
    sd["text.token_embedding.weight"] = _t(tree["txt/Embed_0/embedding"])
    sd["text.positional_embedding"] = _t(tree["txt/pos_embedding"][0])
    for k, t in _blocks(find_encoder(tree, "txt/Encoder_0/"), timm=False):
        sd["text.transformer.resblocks." + k] = t
    sd["text.ln_final.weight"] = _t(tree["txt/Encoder_0/encoder_norm/scale"])
    sd["text.ln_final.bias"] = _t(tree["txt/Encoder_0/encoder_norm/bias"])
    sd["text.text_projection.weight"] = _t(tree["txt/head/kernel"].T)
    sd["text.text_projection.bias"] = _t(tree["txt/head/bias"])
    sd["logit_scale"] = _t(tree["t"].reshape(()))
    if spec.has_bias:
        sd["logit_bias"] = _t(tree["b"].reshape(()))
    return sd


def custom_config(spec: TwoTower) -> dict[str, Any]:
    """A config our builder (models/arch.py) turns into exactly this checkpoint's model."""
    img, txt = spec.img, spec.txt
    cfg: dict[str, Any] = {
        "embed_dim": spec.embed_dim,
        "custom_text": True,
        "vision_cfg": {
            "image_size": spec.image_size,
            "timm_pool": TIMM_POOL[spec.pooling],
            "timm_proj": "" if spec.img_head else "none",
        },
        "text_cfg": {
            "context_length": spec.context_length,
            "vocab_size": spec.vocab,
            "width": txt.width,
            "heads": txt.heads,
            "layers": txt.depth,
            "mlp_ratio": (txt.mlp_dim + 0.5) / txt.width,  # int(width·ratio) == mlp_dim exactly
            "no_causal_mask": True,
            "proj_bias": True,
            "pool_type": "last",
            "norm_kwargs": {"eps": 1e-6},
        },
        "timm_kwargs": {
            "img_size": spec.image_size,
            "patch_size": spec.patch,
            "embed_dim": img.width,
            "depth": img.depth,
            "num_heads": img.heads,
            "mlp_ratio": (img.mlp_dim + 0.5) / img.width,
            "class_token": spec.pooling == "tok",
            "no_embed_class": True,  # big_vision adds position embeddings before the class token
            "global_pool": TIMM_POOL[spec.pooling],
            "fc_norm": False,  # big_vision normalises before pooling, for GAP too
            "num_classes": spec.img_head or 0,
        },
    }
    if spec.has_bias:
        cfg["init_logit_bias"] = -10.0
    return cfg


def shapes_of(model_or_sd: Any) -> dict[str, tuple[int, ...]]:
    sd = model_or_sd if isinstance(model_or_sd, dict) else model_or_sd.state_dict()
    return {k: tuple(v.shape) for k, v in sd.items()}


def fit_problems(want: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]], name: str) -> list[str]:
    """Why a converted state dict does not load into architecture `name` (empty: it fits)."""
    out = []
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing:
        out.append(f"{name} expects {len(missing)} parameter(s) the checkpoint lacks, e.g. {missing[0]}")
    if extra:
        out.append(f"{name} has no place for {len(extra)} parameter(s), e.g. {extra[0]}")
    for k in sorted(set(want) & set(got)):
        if want[k] != got[k]:
            out.append(f"{k}: {name} expects shape {want[k]}, the checkpoint has {got[k]}")
    return out


def _meta_shapes(name: str) -> dict[str, tuple[int, ...]]:
    from silc_bench.models.arch import build_named

    return shapes_of(build_named(name, device="meta"))


def candidates(spec: TwoTower) -> list[str]:
    """open_clip architectures with a timm image tower pooled as this one, and this text tower."""
    out = []
    for name in open_clip_names():
        cfg = open_clip_config(name) or {}
        v, t = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
        if not v.get("timm_model_name") or v.get("timm_pool") != TIMM_POOL[spec.pooling]:
            continue
        if "hf_model_name" in t or t.get("width") != spec.txt.width or t.get("layers") != spec.txt.depth:
            continue
        if t.get("vocab_size") != spec.vocab or t.get("context_length") != spec.context_length:
            continue
        if ("init_logit_bias" in cfg) != spec.has_bias or cfg.get("embed_dim") != spec.embed_dim:
            continue
        out.append(name)
    return sorted(out, key=lambda n: (len(n), n))


def choose_arch(spec: TwoTower, sd_shapes: dict[str, tuple[int, ...]]) -> str | None:
    """The first open_clip architecture whose parameters fit exactly (None: none does)."""
    for name in candidates(spec):
        if not fit_problems(_meta_shapes(name), sd_shapes, name):
            return name
    return None
