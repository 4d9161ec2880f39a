"""Build an open_clip model from a registry `arch`: a named architecture, open_clip.CLIP
kwargs, or a converted checkpoint's own config (a timm ViT image tower of any size).

The one builder evaluation, conversion and export share. open_clip's `TimmModel` takes a
timm model *name* only, so a tower whose sizes no timm name has (tiny test models, GAP or
class-token pooled big_vision towers) is described by `timm_kwargs` and its trunk is
built from timm's `VisionTransformer` directly, under the same state-dict keys.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from silc_bench.core.console import quiet_root_logger
from silc_bench.core.errors import UserError, did_you_mean
from silc_bench.core.paths import ASSETS

if TYPE_CHECKING:
    import torch

# open_clip is imported only where a model is built or its registry is read: it costs
# about two seconds (timm, torchvision), which a run whose features are all cached and a
# mistyped name's error message should not pay.

_CONFIGS_ADDED = False


def register_configs() -> None:
    """Make open_clip know the shipped architectures (ShapesTiny-P8, ...), once, when a
    name is first looked up: never at import, so importing a module changes nothing."""
    global _CONFIGS_ADDED
    if not _CONFIGS_ADDED:
        import open_clip

        open_clip.add_model_config(ASSETS / "model_configs")
        _CONFIGS_ADDED = True


def open_clip_names() -> list[str]:
    """open_clip's architecture names, ours included, read from the config files without
    importing open_clip: a name is a `model_configs/*.json` of open_clip's package or ours
    that has `embed_dim`, `vision_cfg` and `text_cfg` (the rule of open_clip's own registry
    scan; tests/test_deferred_model.py holds the two lists equal)."""
    return list(_names_on_disk())  # a copy: the cached tuple stays as read


@functools.cache
def _names_on_disk() -> tuple[str, ...]:
    spec = importlib.util.find_spec("open_clip")
    folders = [Path(p) / "model_configs" for p in (spec.submodule_search_locations or [])] if spec else []
    names = set()
    for path in [f for d in [*folders, ASSETS / "model_configs"] for f in sorted(d.glob("*.json"))]:
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # open_clip would fail on it at import; it names no architecture here
        if isinstance(cfg, dict) and all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
            names.add(path.stem)
    return tuple(sorted(names, key=_natural_key))


def _natural_key(name: str) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name.lower())]


def open_clip_config(name: str) -> dict[str, Any] | None:
    import open_clip

    register_configs()
    return open_clip.get_model_config(name)


# A small placeholder trunk open_clip builds before `timm_kwargs` replaces it.
_PLACEHOLDER_TRUNK = "vit_tiny_patch16_224"


def build_from_config(cfg: dict[str, Any]) -> torch.nn.Module:
    """open_clip.CLIP(**cfg), or CustomTextCLIP when the config says `custom_text` / has a
    timm tower; `timm_kwargs` (ours) sizes the timm ViT trunk."""
    cfg = copy.deepcopy(cfg)
    kw = cfg.pop("timm_kwargs", None)
    import open_clip

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
    import open_clip

    register_configs()  # open_clip must know the shipped names it is asked to build
    with quiet_root_logger():  # open_clip warns "no pretrained weights": we load our own
        return open_clip.create_model(name, pretrained=None, load_weights=False, device=device)
