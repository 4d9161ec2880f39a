"""Which GELU the target architecture uses, read off the built torch model.

The numpy reference must run the activation of the model being written: big_vision
trains with tanh-approximate GELU, open_clip's SigLIP configs and timm's SigLIP trunks use
exact GELU, while open_clip's `*-SigLIP2` text towers (`act_kwargs: {approximate: tanh}`)
and trunks built with `act_layer='gelu_tanh'` use the tanh one. Rather than trusting a
config key or a class name (nn.GELU(approximate=...), timm's GELU / GELUTanh, a partial),
each MLP activation module is run on a grid and compared with both formulas, so whatever
the builder made is what the check follows.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from silc_bench.convert.reference import gelu
from silc_bench.core.errors import UserError

_GRID = np.linspace(-6.0, 6.0, 241, dtype=np.float64)
_MLP_ACT = re.compile(r"(^|\.)mlp\.(act|gelu)$")  # timm Mlp.act, open_clip's text mlp.gelu


def _kind(module: torch.nn.Module, name: str) -> str:
    with torch.no_grad():
        y = module(torch.from_numpy(_GRID)).numpy()
    for kind in ("exact", "tanh"):
        if np.abs(y - gelu(_GRID, kind)).max() < 1e-9:
            return kind
    raise UserError(
        f"the target's activation {name} ({type(module).__name__}) is neither exact nor tanh-approximate "
        "GELU; big_vision towers use GELU, so this architecture does not fit"
    )


def tower_activation(tower: torch.nn.Module, what: str) -> str:
    """'exact' or 'tanh': the GELU every MLP of `tower` uses (its MAP head's included)."""
    kinds = {name: _kind(m, name) for name, m in tower.named_modules() if _MLP_ACT.search(name)}
    if not kinds:
        raise UserError(f"the target's {what} tower has no MLP activation to check the conversion with")
    found = sorted(set(kinds.values()))
    if len(found) > 1:
        raise UserError(f"the target's {what} tower mixes exact and tanh-approximate GELU; cannot verify it")
    return found[0]


def target_activations(model: torch.nn.Module) -> dict[str, str]:
    """{'image': ..., 'text': ...} for an open_clip CustomTextCLIP with a timm image trunk."""
    return {
        "image": tower_activation(model.visual, "image"),
        "text": tower_activation(model.text, "text"),
    }
