"""`--decode gpu`: JPEG files decoded by `torchvision.io.decode_jpeg` on the model's device
(nvJPEG on CUDA), then resized, cropped and normalised as tensors there.

Loader workers then only read file bytes, which moves the cost the scaling projection
names first (JPEG decode) off the CPUs. The pixels differ slightly from the PIL path
(tensor antialiasing is not PIL's filter), so the option is recorded and enters the run
key and the feature-cache key. Items that are not JPEG files (CIFAR arrays, PNGs) go
through the PIL path as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.io import ImageReadMode, decode_jpeg

from silc_bench.models.preprocess import SQUASH_CROP_RATIO, Preprocess

JPEG_SUFFIXES = (".jpg", ".jpeg")
_INTERP = {
    "bicubic": TF.InterpolationMode.BICUBIC,
    "bilinear": TF.InterpolationMode.BILINEAR,
    "nearest": TF.InterpolationMode.NEAREST,
}


def is_jpeg(item: Any) -> bool:
    return isinstance(item, Path) and item.suffix.lower() in JPEG_SUFFIXES


def read_bytes(item: Path) -> torch.Tensor:
    return torch.frombuffer(bytearray(item.read_bytes()), dtype=torch.uint8)


def decode(blobs: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Encoded JPEGs → (3, H, W) uint8 RGB tensors on `device` (greyscale and CMYK → RGB)."""
    return decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device)


def transform(img: torch.Tensor, p: Preprocess) -> torch.Tensor:
    """The Preprocess geometry and normalisation on a (3, H, W) uint8 tensor."""
    interp = _INTERP[p.interpolation]
    if p.resize == "shortest":
        img = TF.resize(img, [p.size], interpolation=interp, antialias=True)
        img = TF.center_crop(img, [p.size, p.size])
    elif p.resize == "squash_crop":
        big = int(p.size / SQUASH_CROP_RATIO)
        img = TF.resize(img, [big, big], interpolation=interp, antialias=True)
        img = TF.center_crop(img, [p.size, p.size])
    else:
        img = TF.resize(img, [p.size, p.size], interpolation=interp, antialias=True)
    x = img.float().div(255.0)
    return TF.normalize(x, list(p.mean), list(p.std))
