"""Build an open_clip model from a registry `arch`: a named architecture, open_clip.CLIP
kwargs, or a converted checkpoint's own config (a timm ViT image tower of any size).

The one builder evaluation, conversion and export share. open_clip's `TimmModel` takes a
timm model *name* only, so a tower whose sizes no timm name has (tiny test models, GAP or
class-token pooled big_vision towers) is described by `timm_kwargs` and its trunk is
built from timm's `VisionTransformer` directly, under the same state-dict keys.
"""

from __future__ import annotations

import copy
from typing import Any

import open_clip
import torch

from silc_bench.core.console import quiet_root_logger
from silc_bench.core.errors import UserError, did_you_mean
from silc_bench.core.paths import ASSETS

_CONFIGS_ADDED = False


def register_configs() -> None:
    """Make open_clip know the shipped architectures (ShapesTiny-P8, ...), once, when a
    name is first looked up: never at import, so importing a module changes nothing."""
    global _CONFIGS_ADDED
    if not _CONFIGS_ADDED:
        open_clip.add_model_config(ASSETS / "model_configs")
        _CONFIGS_ADDED = True


def open_clip_names() -> list[str]:
    """open_clip's architecture names, ours included."""
    register_configs()
    return open_clip.list_models()


def open_clip_config(name: str) -> dict[str, Any] | None:
    register_configs()
    return open_clip.get_model_config(name)


# A small placeholder trunk open_clip builds before `timm_kwargs` replaces it.
_PLACEHOLDER_TRUNK = "vit_tiny_patch16_224"


def build_from_config(cfg: dict[str, Any]) -> torch.nn.Module:
    """open_clip.CLIP(**cfg), or CustomTextCLIP when the config says `custom_text` / has a
    timm tower; `timm_kwargs` (ours) sizes the timm ViT trunk."""
    cfg = copy.deepcopy(cfg)
    kw = cfg.pop("timm_kwargs", None)
    custom = cfg.pop("custom_text", False) or "timm_model_name" in cfg.get("vision_cfg", {})
    if kw is not None:
        from timm.models.vision_transformer import VisionTransformer

        cfg["vision_cfg"] = {**cfg["vision_cfg"], "timm_model_name": _PLACEHOLDER_TRUNK}
    try:
        model = open_clip.CustomTextCLIP(**cfg) if custom or kw is not None else open_clip.CLIP(**cfg)
        if kw is not None:
            model.visual.trunk = VisionTransformer(**kw)
    except TypeError as e:
        raise UserError(f"invalid model config: {e}") from None
    return model


def build_named(name: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    if name not in open_clip_names() and not name.startswith("local-dir:"):
        raise did_you_mean("open_clip architecture", name, open_clip_names())
    with quiet_root_logger():  # open_clip warns "no pretrained weights": we load our own
        return open_clip.create_model(name, pretrained=None, load_weights=False, device=device)
