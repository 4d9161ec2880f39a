"""Decoding images for the model, without letting one bad file kill a worker silently.

A decode failure does not raise inside the DataLoader worker (where the message would
come back wrapped in a traceback); the item comes back flagged, and the main process
raises a UserError naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif"}


def is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def open_image(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.copy() if im.mode in ("RGB", "L", "P", "RGBA") else im.convert("RGB")


class ImageDataset(torch.utils.data.Dataset):
    """Items → (tensor, index, ok). `read(item)` returns a PIL image."""

    def __init__(
        self, items: Sequence[Any], read: Callable[[Any], Image.Image], transform: Callable, size: int
    ) -> None:
        self.items, self.read, self.transform, self.size = items, read, transform, size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, bool]:
        try:
            img = self.read(self.items[i])
            return self.transform(img), i, True
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
            return torch.zeros(3, self.size, self.size), i, False
