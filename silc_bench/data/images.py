"""Decoding images for the model, without letting one bad file kill a worker silently.

A decode failure does not raise inside the DataLoader worker (where the message would
come back wrapped in a traceback); the item comes back with a one-line status, and the
main process raises a UserError naming the file. Every image becomes 8-bit RGB by one
rule (`to_rgb`), in classification and retrieval alike; a pixel mode with no defined
8-bit range is refused rather than guessed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from silc_bench.core.errors import first_line

# torchvision's IMG_EXTENSIONS (datasets/folder.py), copied so that listing a folder does not
# import torchvision: an image folder counts the files torchvision's ImageFolder counts, so
# the number of images (and the accuracy's denominator) matches the reference. No .gif.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def quiet_opencv() -> None:
    """OpenCV (MMSeg's image loader, through mmcv) prints its own `[ WARN ]` line on a damaged
    file before our one-line error names it; keep its log to errors. OPENCV_LOG_LEVEL is read
    when cv2 is imported (here or in a DataLoader worker, which inherits the environment);
    if cv2 is already imported, its level is set directly. A level the user chose is kept."""
    if "OPENCV_LOG_LEVEL" in os.environ:
        return
    os.environ["OPENCV_LOG_LEVEL"] = "ERROR"
    cv2 = sys.modules.get("cv2")
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is not None:
        log.setLogLevel(log.LOG_LEVEL_ERROR)


quiet_opencv()  # every run imports this module before the segmentation readers import cv2


# Modes PIL converts to RGB exactly (or with the standard matrix, for CMYK and YCbCr).
_CONVERTIBLE = {"1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "LA", "La", "PA", "CMYK", "YCbCr", "LAB", "HSV"}


@contextlib.contextmanager
def image_pixel_limit(pixels: int | None) -> Iterator[None]:
    """Within the block, PIL refuses images over `pixels` (its decompression-bomb guard)
    and warns from half that; None keeps PIL's default. DataLoader workers inherit it."""
    quiet_opencv()
    old = Image.MAX_IMAGE_PIXELS
    if pixels is not None:
        Image.MAX_IMAGE_PIXELS = pixels // 2  # PIL raises above twice this, warns above it
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


class ImageModeError(ValueError):
    """An image whose pixels cannot be turned into 8-bit RGB without guessing their range."""


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB. 16-bit greyscale keeps its high byte (what OpenCV, and so MMSeg's loader,
    does; PIL already reads 16-bit RGB PNGs that way). PIL's own `convert("RGB")` would
    clip every value above 255 and give an all-white image, scored at chance."""
    if im.mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.uint16)
        return Image.fromarray((arr >> 8).astype(np.uint8), "L").convert("RGB")
    if im.mode not in _CONVERTIBLE:
        raise ImageModeError(
            f"pixel mode {im.mode!r} (32-bit integer or float) has no defined 8-bit range; "
            f"convert it to 8- or 16-bit first"
        )
    return im if im.mode == "RGB" else im.convert("RGB")


def open_image(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return to_rgb(im).copy()


def open_image_hashed(item: Any) -> tuple[Image.Image, str]:
    """The image and the sha256 of the very bytes it was decoded from (one read, not two).
    `item` is a file, or anything that reads its own bytes (a WebDataset shard member)."""
    data = item.read_bytes() if hasattr(item, "read_bytes") else Path(item).read_bytes()
    return open_image(io.BytesIO(data)), hashlib.sha256(data).hexdigest()


def decode_status(exc: BaseException, item: str) -> str:
    """One line for a file that could not be decoded (worker side; the main process raises it)."""
    if isinstance(exc, Image.DecompressionBombError):
        return (
            f"image {item} is over the decompression-bomb limit of {2 * Image.MAX_IMAGE_PIXELS} pixels "
            f"({exc}); if you trust it, raise the limit with --max-image-pixels N"
        ).replace("\n", " ")
    if isinstance(exc, ImageModeError):
        return f"cannot decode image {item}: {exc}"
    first = first_line(exc)
    return f"cannot decode image {item} ({type(exc).__name__}: {first})"


class ImageDataset(torch.utils.data.Dataset):
    """Items → (tensor, index, status, digest). `read(item)` returns a PIL image.

    status is "" (ok), "big" (over PIL's warning size, decoded anyway) or an error line.
    With `hashed`, items are files, read once as bytes, and digest is their sha256 ("" else).
    """

    def __init__(
        self,
        items: Sequence[Any],
        read: Callable[[Any], Image.Image],
        transform: Callable,
        size: int,
        describe: Callable[[Any], str] = str,
        hashed: bool = False,
    ) -> None:
        self.items, self.read, self.transform, self.size = items, read, transform, size
        self.describe, self.hashed = describe, hashed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str, str]:
        digest = ""
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", Image.DecompressionBombWarning)
                if self.hashed:
                    img, digest = open_image_hashed(self.items[i])
                else:
                    img = self.read(self.items[i])
            big = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
            return self.transform(to_rgb(img)), i, "big" if big else "", digest
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            blank = torch.zeros(3, self.size, self.size)
            return blank, i, decode_status(e, self.describe(self.items[i])), digest
