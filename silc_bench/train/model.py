"""Building the CLIP to train, its tokenizer, and the image tower's forward at any input size.

The student is built by the evaluation loader's own builder and tokenizer rule
(models/arch.py, `make_tokenizer` in models/resolve.py), so
an export loads back into the same module with the same names. Local crops are smaller
than the model's input, so their forward interpolates the patch position embeddings
(bicubic, as DINO does); global crops use open_clip's own forward unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from silc_bench.core.errors import UserError, did_you_mean
from silc_bench.models.arch import open_clip_config, open_clip_names
from silc_bench.models.weights import load_into, read_state_dict, select_variant

SIGLIP_INIT = {"init_logit_scale": math.log(10.0), "init_logit_bias": -10.0}  # SigLIP's init
VARIANTS = ["teacher", "student"]


def arch_entry(open_clip_name: str | None, config: dict[str, Any] | None, sigmoid: bool) -> dict[str, Any]:
    """The `arch:` of checkpoints.yaml that rebuilds this model, logit bias included.

    A sigmoid loss needs `logit_bias`; an open_clip name whose config lacks it is written
    out as its full config plus `init_logit_bias`, so the loader builds the same keys.
    """
    if config is not None:
        cfg = dict(config)
    else:
        if open_clip_name not in open_clip_names():
            raise did_you_mean(
                "open_clip architecture (model.open_clip)", str(open_clip_name), open_clip_names()
            )
        base = open_clip_config(open_clip_name)
        if not sigmoid or "init_logit_bias" in base:
            return {"open_clip": open_clip_name}
        cfg = dict(base)
    if sigmoid and "init_logit_bias" not in cfg:
        cfg.update(SIGLIP_INIT)
    return {"config": cfg}


def build_clip(arch: dict[str, Any]) -> torch.nn.Module:
    """An open_clip model from an `arch_entry` by the evaluation loader's own builder
    (models/arch.py), refusing image towers the trainer cannot crop."""
    from silc_bench.models.arch import build_from_config, build_named

    try:
        model = build_named(arch["open_clip"]) if "open_clip" in arch else build_from_config(arch["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise UserError(f"model: cannot build the architecture ({type(e).__name__}: {e})") from None
    if not hasattr(model.visual, "conv1") or not hasattr(model.visual, "positional_embedding"):
        raise UserError(
            "model: the training stack supports open_clip ViT image towers (VisionTransformer) only"
        )
    return model


def tokenizer_for(arch: dict[str, Any]):  # noqa: ANN201 - an open_clip tokenizer
    """The evaluation loader's tokenizer rule itself (silc_bench/models/resolve.py)."""
    from silc_bench.config import ModelSpec
    from silc_bench.models.resolve import make_tokenizer

    tok, _ = make_tokenizer(ModelSpec(name="train", arch=arch), arch.get("open_clip"))
    return tok


def image_size(model: torch.nn.Module) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def patch_size_of(visual: torch.nn.Module) -> int:
    size = visual.patch_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def load_init_weights(model: torch.nn.Module, path: str, variant: str | None) -> None:
    """Start from an open_clip state dict or a teacher/student bundle (strict, by name)."""
    sd = read_state_dict(path)
    if any(k.startswith(tuple(f"{v}." for v in VARIANTS)) for k in sd):
        if variant is None:
            raise UserError(f"model.init_weights {path} is a teacher/student bundle: set model.init_variant")
        sd = select_variant(sd, variant, VARIANTS)
    own = model.state_dict()
    if "logit_bias" in own and "logit_bias" not in sd:  # fine-tuning a softmax CLIP with a sigmoid loss
        sd["logit_bias"] = own["logit_bias"]
    load_into(model, sd, f"model.init_weights {path}")


def visual_forward(visual: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """open_clip's VisionTransformer.forward, with position embeddings resized to the input."""
    grid = images.shape[-1] // patch_size_of(visual)
    native = visual.grid_size[0] if isinstance(visual.grid_size, (tuple, list)) else visual.grid_size
    if grid == native and images.shape[-2] == images.shape[-1]:
        return visual(images)
    x = visual.conv1(images)
    n, c, h, w = x.shape
    x = x.reshape(n, c, h * w).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(n, -1, -1)
    pos = visual.positional_embedding.to(x.dtype)
    patch_pos = pos[1:].reshape(1, native, native, c).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, size=(h, w), mode="bicubic", align_corners=False)
    pos = torch.cat([pos[:1], patch_pos.permute(0, 2, 3, 1).reshape(h * w, c)])
    x = torch.cat([cls, x], dim=1) + pos
    x = visual.ln_pre(visual.patch_dropout(x))
    x = visual.transformer(x)
    pooled, _ = visual._pool(x)
    return pooled @ visual.proj if visual.proj is not None else pooled
