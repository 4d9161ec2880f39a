"""Model backends: what a task may ask of a model's towers (`base.VLBackend`), one
subclass per module here.

The table below names each backend's class by import path, so importing this package
imports none of them: a backend's module (and TCL's masker code, say) is loaded the first
time a model asks for it, and a class that is not a `VLBackend` is refused then.
"""

from __future__ import annotations

import torch

from silc_bench.core.errors import UserError
from silc_bench.core.registry import Registry
from silc_bench.models.backends.base import VLBackend


def _is_backend(cls: object) -> bool:
    return isinstance(cls, type) and issubclass(cls, VLBackend) and bool(cls.name)


BACKENDS: Registry[type] = Registry("model backend", check=_is_backend)
BACKENDS.lazy("open_clip", "silc_bench.models.backends.open_clip:OpenCLIPViT")
BACKENDS.lazy("timm-tower", "silc_bench.models.backends.timm_tower:TimmTower")
BACKENDS.lazy("tcl", "silc_bench.models.backends.tcl:TCLBackend")
BACKENDS.lazy("pacl", "silc_bench.models.backends.pacl:PACLBackend")


def backend_class(name: str) -> type[VLBackend]:
    return BACKENDS.get(name)


def backend_for(name: str, module: torch.nn.Module) -> str:
    """The registry's backend, made concrete by the tower: open_clip + a timm trunk → timm-tower."""
    if name == "open_clip" and hasattr(module.visual, "trunk"):
        if not hasattr(module.visual.trunk, "blocks"):
            raise UserError(
                f"timm image tower {type(module.visual.trunk).__name__} is not a ViT; not supported"
            )
        return "timm-tower"
    return name
