"""A pure-PyTorch stand-in for the few `mmcv.ops` names mmsegmentation imports.

The full mmcv has no wheels here and does not compile against torch 2.14's C++20
headers, so we run mmseg 1.2.2 on mmcv-lite, whose `mmcv.ops` fails to import
(`mmcv._ext` is missing). mmseg imports `point_sample` and `sigmoid_focal_loss` without a
guard, and a few others with one. The evaluation path only calls `point_sample`, which is
provided here as the same computation (grid_sample on [0, 1] points mapped to [-1, 1]).
Every other name raises a clear error if it is ever called.

`install()` is a no-op when the real `mmcv.ops` imports. Only `silc_bench.segmentation`
calls it.
"""

from __future__ import annotations

import sys
import types
import warnings

import torch
import torch.nn.functional as F


def point_sample(
    input: torch.Tensor, points: torch.Tensor, align_corners: bool = False, **kwargs
) -> torch.Tensor:
    """Sample `input` (N, C, H, W) at `points` (N, P, 2) or (N, Hp, Wp, 2) in [0, 1] coordinates."""
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    out = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


def _unavailable(name: str):  # noqa: ANN202
    def fail(*_args, **_kwargs):
        raise RuntimeError(
            f"mmcv.ops.{name} needs the compiled mmcv, which is not installed "
            f"(silc-bench runs mmseg on mmcv-lite; only point_sample is provided)"
        )

    fail.__name__ = name
    return fail


UNAVAILABLE = (
    "sigmoid_focal_loss",
    "CrissCrossAttention",
    "PSAMask",
    "DeformConv2d",
    "ModulatedDeformConv2d",
    "nms",
    "roi_align",
    "RoIAlign",
)


def install() -> bool:
    """Make `import mmcv.ops` work; returns True if the stand-in was installed."""
    # mmcv-lite warns on import that a compiled attention op is missing; we never use it
    warnings.filterwarnings("ignore", message="Fail to import ``MultiScaleDeformableAttention``")
    try:
        import mmcv.ops  # noqa: F401

        return False
    except ImportError:
        pass
    import mmcv

    for key in [k for k in sys.modules if k == "mmcv.ops" or k.startswith("mmcv.ops.")]:
        del sys.modules[key]
    mod = types.ModuleType("mmcv.ops", __doc__)
    mod.point_sample = point_sample
    for name in UNAVAILABLE:
        setattr(mod, name, _unavailable(name))
    mod.__silc_bench_standin__ = True
    sys.modules["mmcv.ops"] = mod
    mmcv.ops = mod
    return True
