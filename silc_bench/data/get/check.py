"""`data check`: is this folder the published dataset, in the layout `run` reads?

Each source's `checks` (in its catalogue YAML) name a kind and the split the paper's protocol
scores: how many images (ADE20K 2,000, COCO Karpathy 5,000 with 25,010 captions, ...), which
label values are legal. Every image is opened and decoded (an unreadable one would stop a run
half-way), every label map read whole (values out of range are silently dropped by mmseg's
metric, so they must be caught here), and sizes compared with the image.

Duplicates: the same image listed twice in a split is a problem; two distinct files with the
same bytes are reported as a warning only, since a split file decides what is scored and the
published sets are taken as published.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from silc_bench.core.errors import UserError
from silc_bench.data.get.catalogue import Source
from silc_bench.data.get.download import progress

SHOW = 5  # problems of one kind listed before "and N more"


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    def many(self, what: str, items: list[str]) -> None:
        if items:
            more = f" (and {len(items) - SHOW} more)" if len(items) > SHOW else ""
            self.problems.append(f"{what}: {', '.join(items[:SHOW])}{more}")


def _read_image(path: Path) -> tuple[int, int] | str:
    """(height, width) after a full decode, or why it failed."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.height, im.width
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return f"{path.name} ({type(e).__name__})"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _duplicates(paths: list[Path], rep: Report, root: Path) -> None:
    by_hash: dict[str, list[Path]] = {}
    for p in paths:
        by_hash.setdefault(_digest(p), []).append(p)
    groups = [g for g in by_hash.values() if len(g) > 1]
    if groups:
        g = groups[0]
        rep.warnings.append(
            f"{len(groups)} group(s) of byte-identical images, "
            f"e.g. {g[0].relative_to(root)} = {g[1].relative_to(root)}"
        )


def _seg(folder: Path, spec: dict[str, Any], rep: Report, quiet: bool) -> None:
    img_dir, lab_dir = folder / spec["images"]["dir"], folder / spec["labels"]["dir"]
    img_sfx, lab_sfx = spec["images"]["suffix"], spec["labels"]["suffix"]
    for d in (img_dir, lab_dir):
        if not d.is_dir():
            rep.problems.append(f"missing folder {d.relative_to(folder)}/")
            return
    if spec.get("split_file"):
        split = folder / spec["split_file"]
        if not split.is_file():
            rep.problems.append(f"missing split file {spec['split_file']}")
            return
        ids = split.read_text().split()
        rep.many(f"{spec['split_file']} lists ids twice", [i for i, n in Counter(ids).items() if n > 1])
        rels = [f"{i}{img_sfx}" for i in ids]
    else:
        pattern = f"**/*{img_sfx}" if spec["images"].get("recursive") else f"*{img_sfx}"
        rels = sorted(str(p.relative_to(img_dir)) for p in img_dir.glob(pattern) if p.is_file())
    want = spec["count"]
    if len(rels) != want:
        rep.problems.append(
            f"{spec['images']['dir']}/ holds {len(rels)} images of the split; the published split has {want}"
        )
    low, high = spec["values"]
    extra = set(spec.get("extra_values", []))
    missing, unreadable, mismatched, bad_values, images = [], [], [], [], []
    with progress(len(rels), f"check {spec.get('what', 'images')}", quiet, unit="img") as bar:
        for rel in rels:
            bar.update()
            img = img_dir / rel
            lab = lab_dir / (rel[: -len(img_sfx)] + lab_sfx)
            if not img.is_file() or not lab.is_file():
                missing.append(str((img if not img.is_file() else lab).relative_to(folder)))
                continue
            images.append(img)
            hw = _read_image(img)
            try:
                with Image.open(lab) as im:
                    label = np.asarray(im)
            except (OSError, ValueError) as e:
                unreadable.append(f"{lab.name} ({type(e).__name__})")
                continue
            if isinstance(hw, str):
                unreadable.append(hw)
                continue
            if label.ndim != 2 or label.shape != hw:
                mismatched.append(f"{lab.name} {label.shape} vs image {hw}")
                continue
            values = np.unique(label)
            out = [int(v) for v in values if not (low <= v <= high or int(v) in extra)]
            if out:
                bad_values.append(f"{lab.name} holds {out[:4]}")
    rep.many("missing files", missing)
    rep.many("unreadable files", unreadable)
    rep.many("label maps whose size is not their image's (or not one channel)", mismatched)
    allowed = f"[{low}, {high}]" + (f" and {sorted(extra)}" if extra else "")
    rep.many(f"label values outside {allowed} (not the converted labels?)", bad_values)
    _duplicates(images, rep, folder)
    rep.facts.append(f"{spec.get('what', 'split')}: {len(rels)} images")


def _karpathy(folder: Path, spec: dict[str, Any], rep: Report, quiet: bool) -> None:
    split_file = folder / spec["split_file"]
    try:
        entries = [e for e in json.loads(split_file.read_text())["images"] if e.get("split") == spec["split"]]
        names = [(e.get("filepath") or spec["image_dir"], e["filename"]) for e in entries]
        captions = sum(len(e["sentences"]) for e in entries)
    except FileNotFoundError:
        rep.problems.append(f"missing split file {spec['split_file']}")
        return
    except (ValueError, KeyError, TypeError) as e:
        rep.problems.append(f"{spec['split_file']} is not a Karpathy split file ({type(e).__name__}: {e})")
        return
    if len(entries) != spec["count"] or captions != spec["captions"]:
        rep.problems.append(
            f"the {spec['split']} split has {len(entries)} images and {captions} captions; "
            f"the published one has {spec['count']} and {spec['captions']}"
        )
    rep.many("images listed twice", [f"{d}/{n}" for (d, n), k in Counter(names).items() if k > 1])
    paths = [folder / d / n for d, n in names]
    missing = [str(p.relative_to(folder)) for p in paths if not p.is_file()]
    rep.many("missing images", missing)
    present = [p for p in paths if p.is_file()]
    with progress(len(present), f"check {spec.get('what', 'images')}", quiet, unit="img") as bar:
        unreadable = []
        for p in present:
            if isinstance(r := _read_image(p), str):
                unreadable.append(r)
            bar.update()
    rep.many("unreadable images", unreadable)
    _duplicates(present, rep, folder)
    rep.facts.append(f"{spec.get('what', 'split')}: {len(entries)} images, {captions} captions")


def _cifar(folder: Path, spec: dict[str, Any], rep: Report, quiet: bool) -> None:
    from silc_bench.data.classification import cifar100

    try:
        data = cifar100(folder.parent, folder.name, {"train": "train", "test": "test"})
    except UserError as e:
        rep.problems.append(str(e))
        return
    if len(data.classes) != spec["classes"]:
        rep.problems.append(f"meta lists {len(data.classes)} fine labels; CIFAR-100 has {spec['classes']}")
    for split in ("train", "test"):
        n = len(data.splits[split])
        if n != spec[split]:
            rep.problems.append(f"{split} holds {n} images; the published split has {spec[split]}")
    rep.facts.append(f"train {len(data.splits['train'])}, test {len(data.splits['test'])} images")


def _imagefolder(folder: Path, spec: dict[str, Any], rep: Report, quiet: bool) -> None:
    base = folder / spec["dir"]
    if not base.is_dir():
        rep.problems.append(f"missing folder {spec['dir']}/")
        return
    classes = sorted(p for p in base.iterdir() if p.is_dir())
    files = sorted(f for c in classes for f in c.iterdir() if f.is_file())
    if len(classes) != spec["classes"] or len(files) != spec["count"]:
        rep.problems.append(
            f"{spec['dir']}/ holds {len(classes)} class folders and {len(files)} images; "
            f"the published split has {spec['classes']} and {spec['count']}"
        )
    with progress(len(files), f"check {spec.get('what', 'images')}", quiet, unit="img") as bar:
        unreadable = []
        for p in files:
            if isinstance(r := _read_image(p), str):
                unreadable.append(r)
            bar.update()
    rep.many("unreadable images", unreadable)
    _duplicates(files, rep, folder)
    rep.facts.append(f"{spec.get('what', 'split')}: {len(classes)} classes, {len(files)} images")


KINDS = {"seg": _seg, "karpathy": _karpathy, "cifar": _cifar, "imagefolder": _imagefolder}


def check_folder(source: Source, folder: Path, quiet: bool) -> Report:
    """Every check of `source` on `folder` (its target, or a folder being prepared)."""
    rep = Report()
    if not folder.is_dir():
        rep.problems.append(f"{folder} does not exist")
        return rep
    for spec in source.checks:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise UserError(f"{source.origin}: unknown check kind {kind!r} (known: {', '.join(KINDS)})")
        try:
            KINDS[kind](folder, spec, rep, quiet)
        except KeyError as e:
            raise UserError(f"{source.origin}: a `{kind}` check needs {e}") from None
    return rep
