"""Cityscapes `*_gtFine_labelIds.png` → the 19-class `*_gtFine_labelTrainIds.png`.

The table is cityscapesScripts' `labels.py` (id → trainId; every other id → 255), the same
one its `createTrainIdLabelImgs.py` and MMSegmentation's `cityscapes.py` converter apply
(they redraw the polygons; the labelIds PNGs are drawn from the same polygons, so a table
lookup gives the same maps without needing cityscapesScripts installed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from silc_bench.core.errors import UserError
from silc_bench.data.get.download import progress

ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


def lut() -> np.ndarray:
    table = np.full(256, 255, dtype=np.uint8)
    for i, t in ID_TO_TRAIN_ID.items():
        table[i] = t
    return table


def convert(folder: Path, quiet: bool) -> None:
    maps = sorted((folder / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    if not maps:
        raise UserError("gtFine_trainvaltest.zip held no gtFine/val/<city>/*_gtFine_labelIds.png")
    table = lut()
    with progress(len(maps), "convert Cityscapes labels", quiet, unit="map") as bar:
        for p in maps:
            with Image.open(p) as im:
                raw = np.asarray(im)
            out = p.name.replace("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png")
            Image.fromarray(table[raw]).save(p.with_name(out))
            bar.update()
