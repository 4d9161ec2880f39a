"""ILSVRC2012 validation images → `val/<wnid>/` folders, from the devkit's ground truth.

The devkit's `ILSVRC2012_validation_ground_truth.txt` gives, per validation image in file
order, an ILSVRC2012_ID (1..1000); `meta.mat` maps those ids to WordNet ids. This is what
torchvision's `ImageNet(split="val")` does on first use, so the folders equal its layout.
"""

from __future__ import annotations

import os
from pathlib import Path

from silc_bench.core.errors import UserError
from silc_bench.data.get.download import progress


def wnids(meta_mat: Path) -> dict[int, str]:
    from scipy.io import loadmat

    synsets = loadmat(meta_mat, squeeze_me=True)["synsets"]
    return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}


def convert(folder: Path, quiet: bool) -> None:
    work = folder / ".work"
    try:
        ids = wnids(work / "meta.mat")
        truth = [int(x) for x in (work / "val_ground_truth.txt").read_text().split()]
    except (OSError, KeyError, ValueError) as e:
        raise UserError(
            f"ILSVRC2012 devkit: unreadable meta.mat or ground truth ({type(e).__name__}: {e})"
        ) from None
    images = sorted((work / "val").glob("ILSVRC2012_val_*.JPEG"))
    if len(images) != len(truth):
        raise UserError(f"ILSVRC2012_img_val.tar holds {len(images)} images, the devkit labels {len(truth)}")
    with progress(len(images), "sort ImageNet val into wnid folders", quiet, unit="img") as bar:
        for img, label in zip(images, truth):
            dest = folder / "val" / ids[label]
            dest.mkdir(parents=True, exist_ok=True)
            os.replace(img, dest / img.name)
            bar.update()
