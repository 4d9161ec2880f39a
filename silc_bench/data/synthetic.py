"""A tiny generated classification set in the imagefolder layout (for the demo and tests).

Deterministic for a seed; no downloads. Each class is a coloured shape on a noisy
background, so a trained model could separate them and a random one cannot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = {
    "red_circle": ((220, 40, 40), "circle"),
    "green_square": ((40, 200, 60), "square"),
    "blue_triangle": ((40, 70, 220), "triangle"),
    "yellow_circle": ((230, 210, 40), "circle"),
    "purple_square": ((150, 50, 190), "square"),
}


def draw(color: tuple[int, int, int], shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    bg = rng.integers(60, 160, size=(size, size, 3), dtype=np.uint8)
    img = Image.fromarray(bg)
    d = ImageDraw.Draw(img)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, size=2))
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "circle":
        d.ellipse(box, fill=color)
    elif shape == "square":
        d.rectangle(box, fill=color)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    return img


def make_imagefolder(
    path: Path,
    n_train: int = 8,
    n_test: int = 8,
    size: int = 48,
    seed: int = 0,
    classes: dict[str, tuple[tuple[int, int, int], str]] | None = None,
) -> Path:
    """Write PATH/{train,test}/<class>/<i>.png plus classnames.txt and templates.txt."""
    classes = classes or CLASSES
    rng = np.random.default_rng(seed)
    path = Path(path)
    for split, n in (("train", n_train), ("test", n_test)):
        for name, (color, shape) in sorted(classes.items()):
            folder = path / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                draw(color, shape, size, rng).save(folder / f"{i:04d}.png")
    names = [n.replace("_", " ") for n in sorted(classes)]
    (path / "classnames.txt").write_text("\n".join(names) + "\n")
    (path / "templates.txt").write_text("a photo of a {c}.\na drawing of a {c}.\na {c} on a background.\n")
    return path
