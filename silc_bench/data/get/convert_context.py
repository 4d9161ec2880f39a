"""PASCAL Context's 459-class annotations → the PC-59 / PC-60 label maps `run` reads.

The authors' `trainval.tar.gz` holds one MATLAB file per VOC 2010 image, `LabelMap`, whose
values index their 459-class `labels.txt` (1 = accordion, 2 = aeroplane, …). The 59 classes
everyone scores are the ids in `PC59_IDS` (the published `59_labels.txt`, and the `_mapping`
of MMSegmentation's `tools/dataset_converters/pascal_context.py`); in sorted order they
become 1..59, and every other class 0 (background), as that converter's output reads.
The split files are VOC 2010's main `train.txt` / `val.txt` (4,998 / 5,105 images), which is
how PASCAL Context's train/val split is defined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from silc_bench.core.errors import UserError
from silc_bench.data.get.download import progress

PC59_IDS = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113,
    115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326,
    347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)  # fmt: skip
NUM_CLASSES_459 = 459


def pc60_lut() -> np.ndarray:
    """459-class id (0..459) → PC-60 label (0 background, 1..59 the classes)."""
    lut = np.zeros(NUM_CLASSES_459 + 1, dtype=np.uint8)
    lut[list(PC59_IDS)] = np.arange(1, len(PC59_IDS) + 1, dtype=np.uint8)
    return lut


def convert_map(label459: np.ndarray, where: str = "LabelMap") -> np.ndarray:
    bad = np.unique(label459[(label459 < 0) | (label459 > NUM_CLASSES_459)])
    if bad.size:
        raise UserError(f"{where}: values {bad[:5].tolist()} are not PASCAL Context class ids (0..459)")
    return pc60_lut()[label459.astype(np.int64)]


def convert(folder: Path, quiet: bool) -> None:
    from scipy.io import loadmat

    mats = sorted((folder / ".work" / "context").glob("*.mat"))
    if not mats:
        raise UserError("trainval.tar.gz held no trainval/*.mat annotations")
    out = folder / "SegmentationClassContext"
    out.mkdir(parents=True, exist_ok=True)
    with progress(len(mats), "convert PASCAL Context labels", quiet, unit="map") as bar:
        for p in mats:
            try:
                label = np.asarray(loadmat(p)["LabelMap"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise UserError(
                    f"{p.name}: not a PASCAL Context annotation ({type(e).__name__}: {e})"
                ) from None
            Image.fromarray(convert_map(label, p.name)).save(out / f"{p.stem}.png")
            bar.update()
    have = {p.stem for p in mats}
    splits = folder / "ImageSets" / "SegmentationContext"
    splits.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        main = folder / "ImageSets" / "Main" / f"{split}.txt"
        if not main.is_file():
            raise UserError(f"VOC 2010 archive held no ImageSets/Main/{split}.txt")
        ids = [i for i in main.read_text().split() if i in have]
        (splits / f"{split}.txt").write_text("".join(f"{i}\n" for i in sorted(ids)))
