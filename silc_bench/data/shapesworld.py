"""ShapesWorld: a seeded, procedurally generated benchmark in the real on-disk layouts.

Nobody can download SILC's data here, yet the suite must run every task on real,
trained weights. ShapesWorld draws coloured shapes on textured backgrounds and writes:

- `train/`: image–caption pairs (`manifest.csv`: image,caption; 5 captions per image);
- `cls/`: the imagefolder layout (`{train,test}/<colour_shape>/*.png`, classnames.txt,
  templates.txt), one object per image, 36 colour × shape classes;
- `retrieval/`: the Karpathy layout (`dataset_shapes.json`, `images/`), ≥ 100 test scenes;
- `seg/`: an MMSeg layout (`images/`, PNG label maps with background = 0): objects
  labelled by colour in `annotations/` (shapes-seg) and by shape in `annotations_shape/`
  (shapes-seg-shape). Seg scenes are larger (128 px) but their objects and
  textures keep the training scenes' pixel sizes, so a 64 px window sees them at the
  scale the models were trained on.

Captions name what the tasks ask about: colours, shapes, rough positions and the
background texture (striped or checkered). One caption of five names the shapes alone
and one the colours alone ("a red shape"), the way the segmentation queries ask; naming
the texture gives the background patches something to ground. The same readers and code paths as for the real
datasets are exercised. Bump VERSION whenever the output changes, so caches and
fingerprints never mix versions.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

VERSION = 2
COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (45, 75, 220),
    "yellow": (235, 205, 35),
    "purple": (140, 55, 190),
    "orange": (240, 130, 30),
}
PLACEMENT_TRIES = 20
TRAIN_OBJECTS = (0.5, 0.3, 0.2)  # P(1, 2, 3 objects) in a training scene
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "hexagon")
TEXTURES = ("striped", "checkered")
SEG_CLASSES = ("background", *COLOURS)  # shapes-seg: objects labelled by colour
SHAPE_SEG_CLASSES = ("background", *SHAPES)  # shapes-seg-shape: objects labelled by shape


@dataclass(frozen=True)
class Sizes:
    train_scenes: int = 3000
    cls_per_class: tuple[int, int] = (10, 10)  # (train, test) images per class
    retrieval_scenes: int = 200
    seg_scenes: int = 100
    image: int = 64
    seg_image: int = 128
    seg_objects: tuple[int, int] = (2, 6)  # objects per seg scene, inclusive


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


def _background(rng: np.random.Generator, size: int) -> tuple[Image.Image, str]:
    """Muted noise plus a random stripe or checker texture: shapes must be found, not assumed."""
    base = rng.integers(70, 150, size=3)
    img = base + rng.normal(0, 12, (size, size, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    period = int(rng.integers(6, 16))
    texture = TEXTURES[int(rng.random() >= 0.5)]
    if texture == "striped":
        pattern = ((xx + yy * rng.integers(0, 2)) // period) % 2
    else:
        pattern = ((xx // period) + (yy // period)) % 2
    img += pattern[..., None] * rng.integers(-25, 25, size=3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)), texture


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


def _scene(  # noqa: ANN202
    rng: np.random.Generator,
    size: int,
    n_objects: int,
    with_labels: bool = False,
    scale: int | None = None,
):
    """A scene; object radii are drawn relative to `scale` (default: the scene size).

    Objects do not overlap (up to PLACEMENT_TRIES draws each; an object that finds no free
    spot is left out), so every named shape is visible whole."""
    scale = scale or size
    img, texture = _background(rng, size)
    draw = ImageDraw.Draw(img)
    labels = {k: Image.new("L", (size, size), 0) for k in ("colour", "shape")} if with_labels else {}
    objects: list[tuple[str, str, str]] = []
    placed: list[tuple[float, float, float]] = []
    for _ in range(n_objects):
        colour = str(rng.choice(list(COLOURS)))
        shape = str(rng.choice(SHAPES))
        r = float(rng.uniform(scale * 0.12, scale * 0.22 if n_objects > 1 else scale * 0.32))
        for _ in range(PLACEMENT_TRIES):
            cx, cy = (float(v) for v in rng.uniform(r, size - r, size=2))
            if all(math.hypot(cx - x, cy - y) > r + q + 1 for x, y, q in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        _draw_shape(draw, shape, cx, cy, r, COLOURS[colour])
        for kind, lab in labels.items():
            value = SEG_CLASSES.index(colour) if kind == "colour" else SHAPE_SEG_CLASSES.index(shape)
            _draw_shape(ImageDraw.Draw(lab), shape, cx, cy, r, value)
        objects.append((colour, shape, _where(cx, cy, size)))
    return img, objects, texture, {k: np.array(v) for k, v in labels.items()}


def _train_objects(rng: np.random.Generator) -> int:
    """1, 2 or 3 objects with probabilities TRAIN_OBJECTS. Single objects carry most of the
    shape signal: in a multi-object scene the colours alone usually pick the caption out of
    a batch, and an easy feature that solves the contrastive task suppresses a harder one."""
    return 1 + int(rng.choice(len(TRAIN_OBJECTS), p=TRAIN_OBJECTS))


def captions(objects: list[tuple[str, str, str]], texture: str) -> list[str]:
    """Five captions: colour and shape of every object; the shapes alone; the colours alone
    ("a red shape"); rough positions; the background texture."""
    names = [f"{c} {s}" for c, s, _ in objects]
    placed = [f"{c} {s} {w}" for c, s, w in objects]
    n = len(objects)
    return [
        f"a photo of a {' and a '.join(names)}.",
        f"a {' and a '.join(s for _, s, _ in objects)}.",
        f"a {' and a '.join(f'{c} shape' for c, _, _ in objects)}.",
        f"there is a {' and a '.join(placed)} on a {texture} background.",
        f"{n} shape{'s' if n > 1 else ''} on a {texture} background: a {' and a '.join(names)}.",
    ]


def generate(root: Path, seed: int = 0, sizes: Sizes = Sizes()) -> Path:
    """Write all four parts under `root` (atomically: a half-written root is never used)."""
    from silc_bench.core.files import remove_stale_tmp

    root = Path(root)
    remove_stale_tmp(root.parent, f".{root.name}")  # left by an interrupted generation
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    s = sizes.image

    (tmp / "train" / "images").mkdir(parents=True)
    with open(tmp / "train" / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "caption"])
        for i in range(sizes.train_scenes):
            img, objs, texture, _ = _scene(rng, s, _train_objects(rng))
            name = f"images/{i:06d}.png"
            img.save(tmp / "train" / name)
            for cap in captions(objs, texture):
                w.writerow([name, cap])

    cls = tmp / "cls"
    classes = [f"{c}_{sh}" for c in COLOURS for sh in SHAPES]
    for split, n in zip(("train", "test"), sizes.cls_per_class):
        for cname in sorted(classes):
            colour, shape = cname.split("_")
            (cls / split / cname).mkdir(parents=True)
            for i in range(n):
                img, _ = _background(rng, s)
                r = float(rng.uniform(s * 0.2, s * 0.32))
                cx, cy = (float(v) for v in rng.uniform(r, s - r, size=2))
                _draw_shape(ImageDraw.Draw(img), shape, cx, cy, r, COLOURS[colour])
                img.save(cls / split / cname / f"{i:04d}.png")
    (cls / "classnames.txt").write_text("\n".join(c.replace("_", " ") for c in sorted(classes)) + "\n")
    (cls / "templates.txt").write_text("a {c}.\na photo of a {c}.\nthere is a {c}.\n")

    ret = tmp / "retrieval"
    (ret / "images").mkdir(parents=True)
    entries = []
    for i in range(sizes.retrieval_scenes):
        img, objs, texture, _ = _scene(rng, s, int(rng.integers(1, 4)))
        fname = f"{i:05d}.png"
        img.save(ret / "images" / fname)
        caps = captions(objs, texture)
        entries.append({"filename": fname, "split": "test", "sentences": [{"raw": c} for c in caps]})
    (ret / "dataset_shapes.json").write_text(json.dumps({"dataset": "shapesworld", "images": entries}))

    seg = tmp / "seg"
    (seg / "images").mkdir(parents=True)
    (seg / "annotations").mkdir(parents=True)
    (seg / "annotations_shape").mkdir(parents=True)
    ss = sizes.seg_image
    for i in range(sizes.seg_scenes):
        lo, hi = sizes.seg_objects
        img, _, _, labels = _scene(rng, ss, int(rng.integers(lo, hi + 1)), with_labels=True, scale=s)
        img.save(seg / "images" / f"{i:05d}.png")
        Image.fromarray(labels["colour"]).save(seg / "annotations" / f"{i:05d}.png")
        Image.fromarray(labels["shape"]).save(seg / "annotations_shape" / f"{i:05d}.png")
    write_manifest(tmp)
    (tmp / "VERSION").write_text(f"{VERSION} seed={seed} {sizes}\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


MANIFEST = "MANIFEST.json"
_VERIFIED: dict[Path, int] = {}  # root → the file-identity signature it was verified with


def _signature(root: Path) -> int:
    """Every entry's path, size, mtime, ctime and inode: any delete, add, edit or swap changes
    it, and it costs a stat per file, not a memo lookup per file."""
    sig = []
    for folder, dirs, files in os.walk(root, followlinks=False):  # plain strings: this runs often
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(folder, name))
            sig.append((folder, name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return hash(tuple(sorted(sig)))


def _data_files(root: Path) -> list[Path]:
    """Every entry under the root, symlinks included (a link is never generated, so a
    linked file or folder shows up as extra), without following links."""
    out = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        out += [here / d for d in dirs if (here / d).is_symlink()]
        out += [here / f for f in files if f not in (MANIFEST, "VERSION") or here != root]
    return sorted(out)


def write_manifest(root: Path) -> None:
    """Every generated file's relative path and sha256, so a later run can prove the set intact."""
    files = _data_files(root)
    digests = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    (root / MANIFEST).write_text(json.dumps(digests, indent=0, sort_keys=True))


def verify(root: Path) -> str | None:
    """What is wrong with a generated root (missing, extra or edited files), or None."""
    from silc_bench.core.hashing import sha256_many

    try:
        want = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return "no readable manifest"
    files = _data_files(root)
    links = [p for p in files if p.is_symlink()]
    if links:
        return f"{len(links)} symlinks, e.g. {links[0].relative_to(root)} (nothing generated is a link)"
    have = [str(p.relative_to(root)) for p in files]
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing or extra:
        first = (missing or extra)[0]
        return f"{len(missing)} files missing and {len(extra)} extra, e.g. {first}"
    changed = [name for name, sha in zip(have, sha256_many(files)) if want[name] != sha]
    if changed:
        return f"{len(changed)} files changed, e.g. {changed[0]}"
    return None


def ensure(cache_dir: Path, seed: int = 0) -> Path:
    """The generated root for this version and seed: generated on first use, verified
    against its manifest on every use, and regenerated (it is deterministic) if a file
    was deleted, added or edited, so a damaged set is never scored as if it were whole."""
    root = Path(cache_dir) / f"shapesworld-v{VERSION}-seed{seed}"
    return ensure_root(root, lambda tmp_root: generate(tmp_root, seed))


def ensure_root(root: Path, make: Callable[[Path], Path]) -> Path:
    """`root` as `make(root)` writes it (atomically, with a manifest): generated on first use,
    verified on every use and regenerated when damaged; `ensure` and the v3 training world
    (data/shapesworld_v3.py) share it."""
    from silc_bench.core.console import warn
    from silc_bench.core.errors import UserError
    from silc_bench.core.files import writable_dir

    if (root / "VERSION").is_file() and _VERIFIED.get(root) == _signature(root):
        return root  # verified in this process, and no file changed since
    if (root / "VERSION").is_file() and verify(root) is None:
        _VERIFIED[root] = _signature(root)
        return root
    if not writable_dir(root.parent):
        raise UserError(
            f"cannot generate ShapesWorld into {root.parent}: the folder is not writable "
            f"(set $SILC_BENCH_CACHE to a writable folder)"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one generator at a time; the others wait and reuse
        if (root / "VERSION").is_file():
            problem = verify(root)
            if problem is None:
                _VERIFIED[root] = _signature(root)
                return root
            warn(f"generated dataset {root} does not match its manifest ({problem}); regenerating it", True)
        make(root)
        _VERIFIED[root] = _signature(root)
    return root
