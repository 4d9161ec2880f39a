"""ShapesWorld v3 training world: scenes in groups where colour cannot tell the pairs apart.

In a batch of v2 training pairs the colours (and the texture) already pick almost every
caption out of the batch, so the contrastive loss is nearly solved without shape and
models trained on it learn colour only (reports/shapes_v3_experiment.md). v3 writes the training scenes in
groups of GROUP_SCENES: every scene of a group has the same number of objects, the same
colours in the same order, the same background (base colour, texture, period, contrast;
only the noise differs) and a different set of shapes. A batch built from whole groups
(`data.hard_negative_group`, train/data.py) then holds, for each pair, negatives that only
shape tells apart.

Every v3 caption names the shapes (CAPTION_KINDS): colour+shape bindings, the shapes
alone, bindings with positions, and a count with bindings; never the colours alone, which
would be the same text for every scene of a group. Within a group the shape multisets
differ, so each kind's captions differ too, and the sampler gives a group one kind.

Only the training pairs are v3. The evaluation sets (seed 0), the validation world
(seed 1) and their generator (data/shapesworld.py, VERSION 2) are unchanged. The v3 world
lives in its own root (`shapesworld-train-v3-seed<S>`) with its own manifest check, drawn
from its own random stream.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from silc_bench.data.shapesworld import (
    COLOURS,
    PLACEMENT_TRIES,
    SHAPES,
    TEXTURES,
    TRAIN_OBJECTS,
    _draw_shape,
    _where,
    ensure_root,
    write_manifest,
)

TRAIN_VERSION = 3
GROUP_SCENES = len(SHAPES)  # a group of single-object scenes can hold each shape once
CAPTION_KINDS = ("binding", "shapes", "placed", "counted")
MANIFEST_COLUMNS = ("image", "caption", "group", "kind", "objects")


@dataclass(frozen=True)
class TrainSizes:
    groups: int = 600  # × GROUP_SCENES scenes × len(CAPTION_KINDS) captions
    image: int = 64


@dataclass(frozen=True)
class Background:
    """What the scenes of a group share: everything of the background but its noise."""

    base: tuple[int, int, int]
    texture: str
    period: int
    slant: int
    contrast: tuple[int, int, int]


def _draw_background_params(rng: np.random.Generator) -> Background:
    return Background(
        base=tuple(int(v) for v in rng.integers(70, 150, size=3)),
        texture=TEXTURES[int(rng.random() >= 0.5)],
        period=int(rng.integers(6, 16)),
        slant=int(rng.integers(0, 2)),
        contrast=tuple(int(v) for v in rng.integers(-25, 25, size=3)),
    )


def _render_background(rng: np.random.Generator, size: int, bg: Background) -> Image.Image:
    """v2's muted noise and stripe/checker texture (shapesworld._background), from shared parameters."""
    img = np.array(bg.base, dtype=float) + rng.normal(0, 12, (size, size, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    if bg.texture == "striped":
        pattern = ((xx + yy * bg.slant) // bg.period) % 2
    else:
        pattern = ((xx // bg.period) + (yy // bg.period)) % 2
    img += pattern[..., None] * np.array(bg.contrast)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _shape_sets(rng: np.random.Generator, n_objects: int, k: int) -> list[tuple[str, ...]]:
    """`k` distinct multisets of `n_objects` shapes (k ≤ 6 for one object, ≤ 21 for two)."""
    seen: list[tuple[str, ...]] = []
    while len(seen) < k:
        draw = tuple(sorted(str(s) for s in rng.choice(SHAPES, size=n_objects)))
        if draw not in seen:
            seen.append(draw)
    return seen


def _place(rng: np.random.Generator, size: int, n_objects: int) -> list[tuple[float, float, float]]:
    """Non-overlapping (cx, cy, r), all of them: a scene that cannot fit them is redrawn, so
    every scene of a group keeps the group's colours (v2 drops an object instead)."""
    while True:
        placed: list[tuple[float, float, float]] = []
        for _ in range(n_objects):
            r = float(rng.uniform(size * 0.12, size * 0.22 if n_objects > 1 else size * 0.32))
            for _ in range(PLACEMENT_TRIES):
                cx, cy = (float(v) for v in rng.uniform(r, size - r, size=2))
                if all(math.hypot(cx - x, cy - y) > r + q + 1 for x, y, q in placed):
                    placed.append((cx, cy, r))
                    break
        if len(placed) == n_objects:
            return placed


def group(
    rng: np.random.Generator, size: int, n_objects: int, k: int = GROUP_SCENES
) -> list[tuple[Image.Image, list[tuple[str, str, str]], str]]:
    """`k` scenes of `n_objects` each: the same colours and background, different shapes.
    Each scene is (image, [(colour, shape, where)], texture)."""
    colours = [str(rng.choice(list(COLOURS))) for _ in range(n_objects)]
    bg = _draw_background_params(rng)
    scenes = []
    for shapes in _shape_sets(rng, n_objects, k):
        order = [shapes[i] for i in rng.permutation(n_objects)]  # which colour wears which shape
        img = _render_background(rng, size, bg)
        draw = ImageDraw.Draw(img)
        objects = []
        for colour, shape, (cx, cy, r) in zip(colours, order, _place(rng, size, n_objects)):
            _draw_shape(draw, shape, cx, cy, r, COLOURS[colour])
            objects.append((colour, shape, _where(cx, cy, size)))
        scenes.append((img, objects, bg.texture))
    return scenes


def captions_v3(objects: list[tuple[str, str, str]], texture: str) -> list[str]:
    """One caption per CAPTION_KINDS entry; each names every object's shape."""
    names = " and a ".join(f"{c} {s}" for c, s, _ in objects)
    n = len(objects)
    return [
        f"a photo of a {names}.",
        f"a {' and a '.join(s for _, s, _ in objects)}.",
        f"there is a {' and a '.join(f'{c} {s} {w}' for c, s, w in objects)} on a {texture} background.",
        f"{n} shape{'s' if n > 1 else ''} on a {texture} background: a {names}.",
    ]


def generate_train(root: Path, seed: int = 0, sizes: TrainSizes = TrainSizes()) -> Path:
    """Write `train/` (images, manifest.csv with MANIFEST_COLUMNS) under `root`, atomically."""
    from silc_bench.core.files import remove_stale_tmp

    root = Path(root)
    remove_stale_tmp(root.parent, f".{root.name}")
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # a stream of its own: never the draws of the seed-0 test sets or the seed-1 validation world
    rng = np.random.default_rng([TRAIN_VERSION, seed])
    (tmp / "train" / "images").mkdir(parents=True)
    with open(tmp / "train" / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(MANIFEST_COLUMNS)
        for g in range(sizes.groups):
            n_objects = 1 + int(rng.choice(len(TRAIN_OBJECTS), p=TRAIN_OBJECTS))
            for j, (img, objects, texture) in enumerate(group(rng, sizes.image, n_objects)):
                name = f"images/{g:05d}-{j}.png"
                img.save(tmp / "train" / name)
                for kind, cap in enumerate(captions_v3(objects, texture)):
                    w.writerow([name, cap, g, kind, n_objects])
    write_manifest(tmp)
    (tmp / "VERSION").write_text(f"{TRAIN_VERSION} train seed={seed} {sizes}\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def ensure_train(cache_dir: Path, seed: int = 0) -> Path:
    """The v3 training root: generated on first use, checked against its manifest on every use."""
    root = Path(cache_dir) / f"shapesworld-train-v{TRAIN_VERSION}-seed{seed}"
    return ensure_root(root, lambda tmp_root: generate_train(tmp_root, seed))
