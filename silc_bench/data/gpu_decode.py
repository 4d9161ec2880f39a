"""`--decode gpu`: JPEG files decoded by `torchvision.io.decode_jpeg` on the model's device
(nvJPEG on CUDA), then resized, cropped and normalised as tensors there.

Loader workers then only read file bytes, which moves the cost the scaling projection
names first (JPEG decode) off the CPUs. The pixels differ slightly from the PIL path
(tensor antialiasing is not PIL's filter), so the option is recorded and enters the run
key and the feature-cache key. Items that are not JPEG files (CIFAR arrays, PNGs) go
through the PIL path as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from silc_bench.core.errors import UserError
from silc_bench.data.images import decode_status, to_rgb
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
    """The file's bytes; an empty tensor for an empty or unreadable file, which the decoder
    refuses and `_decode_one` then reports as the PIL path does (one line, exit 2)."""
    try:
        data = item.read_bytes()
    except OSError:
        data = b""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)


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


class _Bytes(torch.utils.data.Dataset):
    """File bytes only: decoding happens on the model's device."""

    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return read_bytes(self.items[i]), i


def _decode_one(blob: torch.Tensor, item: Any, split: Any, device: torch.device) -> torch.Tensor:
    """One file the batch decoder refused: a .jpg that is really a PNG goes through PIL,
    as the CPU path would read it; a file neither reads is the user's one-line error."""
    try:
        if blob.numel():
            return decode([blob], device)[0]
    except (RuntimeError, ValueError):
        pass
    try:
        img = to_rgb(split.read(item))
    except Exception as e:  # noqa: BLE001 - the same one-line report as the PIL path
        raise UserError(decode_status(e, split.describe(item))) from None
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).to(device)


def device_batches(
    items: list, split: Any, p: Preprocess, device: torch.device, batch_size: int, workers: int
) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """(images, indices): workers read bytes, the device decodes and transforms. PIL's own
    decompression-bomb threshold (twice `MAX_IMAGE_PIXELS`) applies here too."""
    loader = torch.utils.data.DataLoader(
        _Bytes(items),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=lambda b: ([x for x, _ in b], [i for _, i in b]),
        prefetch_factor=4 if workers > 0 else None,
    )
    limit = Image.MAX_IMAGE_PIXELS
    for blobs, idx in loader:
        try:
            if not all(b.numel() for b in blobs):
                raise ValueError("an empty file")
            imgs = decode(blobs, device)
        except (RuntimeError, ValueError):
            imgs = [_decode_one(b, items[i], split, device) for b, i in zip(blobs, idx)]
        for img, i in zip(imgs, idx):
            if limit and img.shape[1] * img.shape[2] > 2 * limit:
                raise UserError(
                    f"{split.describe(items[i])}: {img.shape[2]}x{img.shape[1]} pixels is over the "
                    f"decompression-bomb limit of {2 * limit:,}; raise it with --max-image-pixels "
                    "if you trust it"
                )
        yield torch.stack([transform(img, p) for img in imgs]), idx
