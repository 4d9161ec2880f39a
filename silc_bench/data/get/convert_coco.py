"""COCO-Stuff 164k's stuffthingmaps → the two label layouts `run` reads.

The stuffthingmaps PNGs hold COCO's 182 category ids, 0-indexed (0 = person … 181 = wood),
and 255 for unlabelled pixels. Eleven thing ids were never annotated (COCO ids 12, 26, 29,
30, 45, 66, 68, 69, 71, 83, 91), which leaves 171 classes:

- `<id>_labelTrainIds.png` (coco-stuff): the 171 kept ids renumbered 0..170 in order, 255
  kept as ignore; as MMSegmentation's `tools/dataset_converters/coco_stuff164k.py`.
- `<id>_instanceTrainIds.png` (coco-object): the 80 things as 1..80, every stuff class and
  the unlabelled pixels as 0 (background); as GroupViT's `convert_coco_object.py`, which
  TCL and later zero-shot papers use.

A value outside the published ids (which the published maps never hold) becomes 255 in
both, as MMSegmentation's converter leaves it, and `data check` then reports nothing odd.
Tables, not per-class loops: a lookup table per layout, applied once per map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from silc_bench.core.errors import UserError
from silc_bench.data.get.download import progress

UNANNOTATED = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)  # 0-indexed COCO ids with no labels
NUM_THINGS_IDS = 91  # 0-indexed ids 0..90 are things (with the unannotated among them)


def kept_ids() -> list[int]:
    return [i for i in range(182) if i not in UNANNOTATED]


def stuff_lut() -> np.ndarray:
    """stuffthingmap value → COCO-Stuff-171 train id (255: ignore)."""
    lut = np.full(256, 255, dtype=np.uint8)
    lut[kept_ids()] = np.arange(171, dtype=np.uint8)
    return lut


def object_lut() -> np.ndarray:
    """stuffthingmap value → COCO-Object id: things 1..80, stuff and unlabelled 0."""
    lut = np.full(256, 255, dtype=np.uint8)
    kept = kept_ids()
    things = [i for i in kept if i < NUM_THINGS_IDS]
    lut[things] = np.arange(1, len(things) + 1, dtype=np.uint8)
    lut[[i for i in kept if i >= NUM_THINGS_IDS]] = 0
    lut[255] = 0
    return lut


def convert_map(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labelTrainIds, instanceTrainIds) of one stuffthingmap."""
    return stuff_lut()[raw], object_lut()[raw]


def convert(folder: Path, quiet: bool) -> None:
    """Write both label files next to each `annotations/val2017/<id>.png`."""
    ann = folder / "annotations" / "val2017"
    maps = sorted(p for p in ann.glob("*.png") if "TrainIds" not in p.name)
    if not maps:
        raise UserError(f"{ann}: no stuffthingmaps PNGs to convert")
    stuff, obj = stuff_lut(), object_lut()
    with progress(len(maps), "convert COCO-Stuff labels", quiet, unit="map") as bar:
        for p in maps:
            try:
                with Image.open(p) as im:
                    raw = np.asarray(im)
            except OSError as e:
                raise UserError(f"{p}: unreadable stuffthingmap ({e})") from None
            if raw.ndim != 2 or raw.dtype != np.uint8:
                raise UserError(
                    f"{p}: expected a one-channel 8-bit stuffthingmap, got {raw.dtype} {raw.shape}"
                )
            Image.fromarray(stuff[raw]).save(p.with_name(f"{p.stem}_labelTrainIds.png"))
            Image.fromarray(obj[raw]).save(p.with_name(f"{p.stem}_instanceTrainIds.png"))
            bar.update()
