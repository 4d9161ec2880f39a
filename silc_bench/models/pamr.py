"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020), as TCL applies it.

Each iteration replaces every mask value by a weighted mean of its neighbours at several
dilations, with weights from colour similarity. The image never changes, so the weights are
computed once. The definition is TCL's (a copy of the 1-stage-wseg code); only the way it
is computed differs:

- Borders use replicate padding.
- At each dilation d there are 8 neighbours, at offsets (±d|0, ±d|0) without the centre.
  With six dilations that makes 48 neighbours; they give the affinities and the values copied.
- A colour scale std is taken per pixel and channel over 54 samples: the full 3×3 pattern
  (centre included) at each dilation. It is unbiased (torch's default), and all dilations
  are pooled.
- `a = -|x - x_n| / (1e-8 + 0.1·std)`, averaged over colour channels, then a softmax over
  the 48 neighbours. The centre pixel gets no weight of its own.

Neighbours come from slices of one padded copy per dilation, not from one-hot convolutions.
The mask update sums the neighbours one at a time, so there is never a (B, C, 48, H, W) tensor.
For TCL's 150-class masks at 112×112 that one would take hundreds of MB.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

DILATIONS: tuple[int, ...] = (1, 2, 4, 8, 12, 24)
NEIGHBOURS: tuple[tuple[int, int], ...] = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)
)
STENCIL: tuple[tuple[int, int], ...] = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def _shifted(x: torch.Tensor, d: int, offsets: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """x[..., i + dy·d, j + dx·d] for each offset, with coordinates clamped to the border."""
    h, w = x.shape[-2:]
    xp = F.pad(x, [d, d, d, d], mode="replicate")
    return [xp[..., d + dy * d : d + dy * d + h, d + dx * d : d + dx * d + w] for dy, dx in offsets]


def _neighbours(x: torch.Tensor, dilations: Sequence[int]) -> list[torch.Tensor]:
    """The 8·len(dilations) neighbours of every pixel, dilation-major, each shaped like x."""
    return [n for d in dilations for n in _shifted(x, d, NEIGHBOURS)]


def pamr_weights(image: torch.Tensor, dilations: Sequence[int] = DILATIONS) -> torch.Tensor:
    """(B, 3, H, W) image → (B, P, H, W) neighbour weights, P = 8·len(dilations), summing to 1 over P."""
    samples = torch.stack([s for d in dilations for s in _shifted(image, d, STENCIL)], dim=2)
    std = samples.std(dim=2)  # (B, K, H, W), unbiased over the 9·len(dilations) samples
    diff = torch.stack([(image - n).abs() for n in _neighbours(image, dilations)], dim=2)
    affinity = -diff / (1e-8 + 0.1 * std.unsqueeze(2))  # (B, K, P, H, W)
    return affinity.mean(dim=1).softmax(dim=1)


def pamr(
    image: torch.Tensor,
    mask: torch.Tensor,
    iterations: int = 10,
    dilations: Sequence[int] = DILATIONS,
) -> torch.Tensor:
    """Refine (B, C, h, w) masks with a (B, 3, H, W) image → (B, C, H, W).

    If the mask is not at the image size, it is first resized to it bilinearly with
    align_corners=True, as TCL does. The work is done in at least float32: in float16 the
    1e-8 guard underflows and flat regions would give 0/0.
    """
    if image.dim() != 4 or mask.dim() != 4 or image.shape[0] != mask.shape[0]:
        shapes = f"{tuple(image.shape)}, {tuple(mask.shape)}"
        raise ValueError(f"pamr expects (B,3,H,W) and (B,C,H,W) with the same B, got {shapes}")
    out_dtype = mask.dtype
    mask = mask.to(torch.promote_types(mask.dtype, torch.float32))
    if mask.shape[-2:] != image.shape[-2:]:
        mask = F.interpolate(mask, size=image.shape[-2:], mode="bilinear", align_corners=True)
    weights = pamr_weights(image.to(mask.dtype), dilations)
    for _ in range(iterations):
        out = torch.zeros_like(mask)
        for p, n in enumerate(_neighbours(mask, dilations)):
            out += n * weights[:, p : p + 1]
        mask = out
    return mask.to(out_dtype)
