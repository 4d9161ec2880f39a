"""Tiny segmentation datasets in the eight MMSeg layouts (images + label maps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# layout name → (image dir, label dir, image suffix, label suffix, max label value, split file)
LAYOUTS = {
    "ade20k": (
        "ade/ADEChallengeData2016/images/validation",
        "ade/ADEChallengeData2016/annotations/validation",
        ".jpg",
        ".png",
        150,
        None,
    ),
    "coco-stuff": (
        "coco_stuff164k/images/val2017",
        "coco_stuff164k/annotations/val2017",
        ".jpg",
        "_labelTrainIds.png",
        170,
        None,
    ),
    "coco-object": (
        "coco_stuff164k/images/val2017",
        "coco_stuff164k/annotations/val2017",
        ".jpg",
        "_instanceTrainIds.png",
        80,
        None,
    ),
    "pc59": (
        "VOCdevkit/VOC2010/JPEGImages",
        "VOCdevkit/VOC2010/SegmentationClassContext",
        ".jpg",
        ".png",
        59,
        "VOCdevkit/VOC2010/ImageSets/SegmentationContext/val.txt",
    ),
    "voc21": (
        "VOCdevkit/VOC2012/JPEGImages",
        "VOCdevkit/VOC2012/SegmentationClass",
        ".jpg",
        ".png",
        20,
        "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt",
    ),
    "cityscapes": (
        "cityscapes/leftImg8bit/val/frankfurt",
        "cityscapes/gtFine/val/frankfurt",
        "_leftImg8bit.png",
        "_gtFine_labelTrainIds.png",
        18,
        None,
    ),
}


def _scene(
    rng: np.random.Generator, h: int, w: int, max_label: int, ignore: bool
) -> tuple[np.ndarray, np.ndarray]:
    label = np.zeros((h, w), dtype=np.uint8)
    img = np.zeros((h, w, 3), dtype=np.uint8)
    ids = rng.choice(np.arange(0, max_label + 1), size=3, replace=False)
    label[:] = ids[0]
    label[: h // 2, : w // 2] = ids[1]
    label[h // 2 :, w // 3 :] = ids[2]
    if ignore:
        label[0, :] = 255
    for c in np.unique(label):
        img[label == c] = (np.array([37, 91, 151]) * (int(c) + 1)) % 256
    img = np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    return img, label


def make_all(root: Path, n: int = 3, h: int = 40, w: int = 56) -> Path:
    rng = np.random.default_rng(0)
    for name, (idir, ldir, isuf, lsuf, max_label, split) in LAYOUTS.items():
        (root / idir).mkdir(parents=True, exist_ok=True)
        (root / ldir).mkdir(parents=True, exist_ok=True)
        stems = [
            f"{name.replace('-', '_')}_{i:04d}" if name != "cityscapes" else f"frankfurt_000000_{i:06d}"
            for i in range(n)
        ]
        if name == "coco-object":  # shares the COCO images with coco-stuff
            stems = [f"coco_stuff_{i:04d}" for i in range(n)]
        for i, stem in enumerate(stems):
            img, label = _scene(
                rng, h + i, w - i, max_label, ignore=name in ("voc21", "coco-stuff", "cityscapes")
            )
            if not (name == "coco-object" and (root / idir / f"{stem}{isuf}").exists()):
                Image.fromarray(img).save(root / idir / f"{stem}{isuf}")
            if name == "coco-object":  # its own label file, sized like the shared image
                size = Image.open(root / idir / f"{stem}{isuf}").size
                label = np.array(Image.fromarray(label).resize(size, Image.NEAREST))
            Image.fromarray(label).save(root / ldir / f"{stem}{lsuf}")
        if split:
            (root / split).parent.mkdir(parents=True, exist_ok=True)
            (root / split).write_text("\n".join(stems) + "\n")
    return root
