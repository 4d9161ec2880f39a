"""ShapesWorld: a seeded, procedurally generated benchmark in the real on-disk layouts.

Nobody can download SILC's data here, yet the suite must run every task on real,
trained weights. ShapesWorld draws coloured shapes on textured backgrounds and writes:

- `train/`: image–caption pairs (`manifest.csv`: image,caption; 5 captions per image);
- `cls/`: the imagefolder layout (`{train,test}/<colour_shape>/*.png`, classnames.txt,
  templates.txt), one object per image, 36 colour × shape classes;
- `retrieval/`: the Karpathy layout (`dataset_shapes.json`, `images/`), ≥ 100 test scenes;
- `seg/`: an MMSeg layout (`images/`, `annotations/` PNG label maps), background = 0
  plus one class per shape.

Captions name what the tasks ask about: colours, shapes and rough positions. The same
readers and code paths as for the real datasets are exercised. Bump VERSION whenever
the output changes, so caches and fingerprints never mix versions.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

VERSION = 1
COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (45, 75, 220),
    "yellow": (235, 205, 35),
    "purple": (140, 55, 190),
    "orange": (240, 130, 30),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "hexagon")
SEG_CLASSES = ("background", *SHAPES)


@dataclass(frozen=True)
class Sizes:
    train_scenes: int = 3000
    cls_per_class: tuple[int, int] = (10, 10)  # (train, test) images per class
    retrieval_scenes: int = 200
    seg_scenes: int = 100
    image: int = 64
    seg_image: int = 128


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "hexagon":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.linspace(0, 2 * np.pi, 7)[:-1]]
    if shape == "cross":
        t = r / 3
        return [
            (cx - t, cy - r),
            (cx + t, cy - r),
            (cx + t, cy - t),
            (cx + r, cy - t),
            (cx + r, cy + t),
            (cx + t, cy + t),
            (cx + t, cy + r),
            (cx - t, cy + r),
            (cx - t, cy + t),
            (cx - r, cy + t),
            (cx - r, cy - t),
            (cx - t, cy - t),
        ]
    raise ValueError(shape)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:  # noqa: ANN001
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon(_polygon(shape, cx, cy, r), fill=fill)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Muted noise plus a random stripe or checker texture: shapes must be found, not assumed."""
    base = rng.integers(70, 150, size=3)
    img = base + rng.normal(0, 12, (size, size, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    period = int(rng.integers(6, 16))
    if rng.random() < 0.5:
        pattern = ((xx + yy * rng.integers(0, 2)) // period) % 2
    else:
        pattern = ((xx // period) + (yy // period)) % 2
    img += pattern[..., None] * rng.integers(-25, 25, size=3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _where(cx: float, cy: float, size: int) -> str:
    col = "left" if cx < size / 3 else "right" if cx > 2 * size / 3 else "center"
    row = "top" if cy < size / 3 else "bottom" if cy > 2 * size / 3 else "middle"
    if col == "center" and row == "middle":
        return "in the center"
    if col == "center":
        return f"at the {row}"
    if row == "middle":
        return f"on the {col}"
    return f"at the {row} {col}"


def _scene(rng: np.random.Generator, size: int, n_objects: int, label: np.ndarray | None = None):  # noqa: ANN202
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    lab_img = Image.fromarray(label) if label is not None else None
    lab_draw = ImageDraw.Draw(lab_img) if lab_img is not None else None
    objects = []
    for _ in range(n_objects):
        colour = str(rng.choice(list(COLOURS)))
        shape = str(rng.choice(SHAPES))
        r = float(rng.uniform(size * 0.12, size * 0.22 if n_objects > 1 else size * 0.32))
        cx, cy = (float(v) for v in rng.uniform(r, size - r, size=2))
        _draw_shape(draw, shape, cx, cy, r, COLOURS[colour])
        if lab_draw:
            _draw_shape(lab_draw, shape, cx, cy, r, SEG_CLASSES.index(shape))
        objects.append((colour, shape, _where(cx, cy, size)))
    return img, objects, (np.array(lab_img) if lab_img is not None else None)


def captions(objects: list[tuple[str, str, str]], rng: np.random.Generator | None = None) -> list[str]:
    """Five captions naming every object's colour and shape, most with rough positions."""
    names = [f"{c} {s}" for c, s, _ in objects]
    placed = [f"{c} {s} {w}" for c, s, w in objects]
    both = " and ".join(names)
    out = [
        f"a {both}.",
        f"a photo of a {' and a '.join(names)}.",
        "; ".join(f"a {p}" for p in placed) + ".",
        f"there is a {' and a '.join(placed)}.",
        f"{len(objects)} shape{'s' if len(objects) > 1 else ''}: a {both} on a patterned background.",
    ]
    return out


def generate(root: Path, seed: int = 0, sizes: Sizes = Sizes()) -> Path:
    """Write all four parts under `root` (atomically: a half-written root is never used)."""
    root = Path(root)
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    s = sizes.image

    (tmp / "train" / "images").mkdir(parents=True)
    with open(tmp / "train" / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "caption"])
        for i in range(sizes.train_scenes):
            img, objs, _ = _scene(rng, s, int(rng.integers(1, 4)))
            name = f"images/{i:06d}.png"
            img.save(tmp / "train" / name)
            for cap in captions(objs, rng):
                w.writerow([name, cap])

    cls = tmp / "cls"
    classes = [f"{c}_{sh}" for c in COLOURS for sh in SHAPES]
    for split, n in zip(("train", "test"), sizes.cls_per_class):
        for cname in sorted(classes):
            colour, shape = cname.split("_")
            (cls / split / cname).mkdir(parents=True)
            for i in range(n):
                img = _background(rng, s)
                r = float(rng.uniform(s * 0.2, s * 0.32))
                cx, cy = (float(v) for v in rng.uniform(r, s - r, size=2))
                _draw_shape(ImageDraw.Draw(img), shape, cx, cy, r, COLOURS[colour])
                img.save(cls / split / cname / f"{i:04d}.png")
    (cls / "classnames.txt").write_text("\n".join(c.replace("_", " ") for c in sorted(classes)) + "\n")
    (cls / "templates.txt").write_text("a {c}.\na photo of a {c}.\na {c} on a patterned background.\n")

    ret = tmp / "retrieval"
    (ret / "images").mkdir(parents=True)
    entries = []
    for i in range(sizes.retrieval_scenes):
        img, objs, _ = _scene(rng, s, int(rng.integers(1, 4)))
        fname = f"{i:05d}.png"
        img.save(ret / "images" / fname)
        entries.append(
            {"filename": fname, "split": "test", "sentences": [{"raw": c} for c in captions(objs, rng)]}
        )
    (ret / "dataset_shapes.json").write_text(json.dumps({"dataset": "shapesworld", "images": entries}))

    seg = tmp / "seg"
    (seg / "images").mkdir(parents=True)
    (seg / "annotations").mkdir(parents=True)
    ss = sizes.seg_image
    for i in range(sizes.seg_scenes):
        label = np.zeros((ss, ss), dtype=np.uint8)
        img, _, label = _scene(rng, ss, int(rng.integers(1, 4)), label)
        img.save(seg / "images" / f"{i:05d}.png")
        Image.fromarray(label).save(seg / "annotations" / f"{i:05d}.png")
    (tmp / "VERSION").write_text(f"{VERSION} seed={seed} {sizes}\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def ensure(cache_dir: Path, seed: int = 0) -> Path:
    """The generated root for this version and seed, generating it on first use."""
    root = Path(cache_dir) / f"shapesworld-v{VERSION}-seed{seed}"
    if not (root / "VERSION").is_file():
        generate(root, seed)
    return root
