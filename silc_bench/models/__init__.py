"""Model loading behind one adapter: `load_model(ref) -> VLModel`.

The names below are imported on first use (PEP 562), so importing a light module of this
package (`weight_paths`, `text_rules`) does not import torch and open_clip.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "VLModel": "silc_bench.models.adapter",
    "ModelRef": "silc_bench.models.resolve",
    "list_models": "silc_bench.models.resolve",
    "load_model": "silc_bench.models.resolve",
    "parse_model_ref": "silc_bench.models.resolve",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
