"""Image classification layouts: imagefolder, ImageNet (val/train by wnid) and CIFAR-100.

Sample order is fixed: classes by sorted folder name, then files by sorted name. The
few-shot permutations index into that order, so it is part of the protocol.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from silc_bench.core.errors import UserError
from silc_bench.core.hashing import files_fingerprint, hash_obj
from silc_bench.core.registry import Registry
from silc_bench.data.images import IMAGE_SUFFIXES, is_image, open_image


@dataclass
class ImageSplit:
    """One split: items in protocol order, their labels, and how to read an item."""

    name: str
    items: list[Any]
    labels: np.ndarray
    read: Callable[[Any], Image.Image]
    fingerprint: str
    describe: Callable[[Any], str] = str
    # Items that are files: the sha256 of each as the fingerprint hashed it. The loader hashes
    # the bytes it decodes and the encoding is refused if they differ (a file edited, even
    # restored, while the run read it), so features are keyed by the bytes actually read.
    digests: list[str] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def head(self, n: int | None) -> ImageSplit:
        if n is None or n >= len(self.items):
            return self
        fp = hash_obj([self.fingerprint, "head", n])
        digests = self.digests[:n] if self.digests is not None else None
        return ImageSplit(self.name, self.items[:n], self.labels[:n], self.read, fp, self.describe, digests)


@dataclass
class ClassificationData:
    classes: list[str]  # raw ids: folder names, wnids, CIFAR fine labels
    classnames: list[str] | None  # display names the dataset ships (None: use an asset)
    templates: list[str] | None  # templates the dataset ships (None: use an asset)
    splits: dict[str, ImageSplit] = field(default_factory=dict)
    meta_files: list[Path] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hash_obj(
            [
                self.classes,
                {k: s.fingerprint for k, s in self.splits.items()},
                self.classnames,
                self.templates,
            ]
        )


FORMATS: Registry[Callable[..., ClassificationData]] = Registry("classification data format")


def _listing(folder: Path, n: int = 6) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "nothing (not a folder)"
    if not names:
        return "an empty folder"
    return ", ".join(names[:n]) + (f", ... ({len(names)} entries)" if len(names) > n else "")


def _class_folders(split_dir: Path, what: str) -> list[Path]:
    if not split_dir.is_dir():
        raise UserError(f"{what}: expected folder {split_dir}, found {_listing(split_dir.parent)}")
    entries = sorted(split_dir.iterdir())
    for p in entries:
        if p.is_symlink():
            _check_link(p, split_dir, what)
    dirs = [p for p in entries if p.is_dir()]
    loose = [p.name for p in entries if p.is_file() and is_image(p)]
    if loose or not dirs:
        raise UserError(
            f"{what}: expected one folder per class in {split_dir} "
            f"(<class>/<images>), found {_listing(split_dir)}"
        )
    real: dict[Path, str] = {}
    for d in dirs:
        target = d.resolve()
        if target in real:
            raise UserError(
                f"{what}: class folders {real[target]}/ and {d.name}/ in {split_dir} are the same "
                f"folder (a symlink); each class needs its own images"
            )
        real[target] = d.name
    return dirs


def _check_link(link: Path, split_dir: Path, what: str) -> None:
    """A symlinked class folder is fine if it leads to a real folder outside the split;
    a broken link, a loop, or a link to the split or one of its parents is an error."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        raise UserError(f"{what}: {link} is a broken symlink or a symlink loop") from None
    here = split_dir.resolve()
    if target.is_dir() and (target == here or target in here.parents):
        raise UserError(f"{what}: {link} is a symlink loop (it points to {target}, which holds it)")


def _folder_split(
    split_dir: Path, classes: list[str], what: str, per_class: int | None, fixed_classes: bool = False
) -> ImageSplit:
    """`fixed_classes`: the class list is the dataset's own (ImageNet's 1000 wnids), not
    the folders found, so an empty folder cannot add a class."""
    items: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        entries = sorted((split_dir / cls).iterdir()) if (split_dir / cls).is_dir() else []
        broken = [p for p in entries if p.is_symlink() and not p.exists()]
        if broken:
            raise UserError(f"{what}: {broken[0]} is a broken symlink or a symlink loop")
        files = [p for p in entries if p.is_file() and is_image(p)]
        if not files and not fixed_classes:
            raise UserError(
                f"{what}: class folder {split_dir / cls}/ holds no images; an empty class would "
                f"still count as a class (and lower the chance level): remove it or fill it"
            )
        if per_class is not None:
            files = files[:per_class]
        items += files
        labels += [label] * len(files)
    if not items:
        raise UserError(
            f"{what}: no images found under {split_dir}/<class>/ (extensions: {', '.join(IMAGE_SUFFIXES)})"
        )
    seen: dict[Path, Path] = {}
    real_dirs: dict[Path, Path] = {}
    for p in items:  # one image under two labels (a file symlink into another class)
        if p.is_symlink():
            target = p.resolve()
        else:  # a plain file's real path is its real folder's: resolve each folder once, not each file
            folder = real_dirs.setdefault(p.parent, p.parent.resolve())
            target = folder / p.name
        if target in seen:
            raise UserError(f"{what}: {p} and {seen[target]} are the same image file (a symlink)")
        seen[target] = p
    digests: list[str] = []
    fingerprint = files_fingerprint(split_dir.parent, items, digests=digests)
    return ImageSplit(
        split_dir.name, items, np.asarray(labels, dtype=np.int64), open_image, fingerprint, str, digests
    )


def _read_lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


@FORMATS.register("imagefolder")
def imagefolder(
    root: Path, path: str, splits: dict[str, Any], train_per_class: int | None = None, **_: Any
) -> ClassificationData:
    """`PATH/{train,val,test}/<class>/<images>`, optional classnames.txt and templates.txt."""
    base = Path(path).expanduser()
    base = base if base.is_absolute() else root / base
    what = f"imagefolder {base}"
    if not base.is_dir():
        raise UserError(f"dataset folder not found: {base}")
    chosen = {role: _pick_split(base, names, what) for role, names in splits.items()}
    real = {role: (base / split).resolve() for role, split in chosen.items()}
    if len(set(real.values())) < len(real):
        raise UserError(
            f"{what}: the {' and '.join(f'{s}/' for s in chosen.values())} splits are the same folder "
            f"(a symlink); a probe scored on its own training images means nothing"
        )
    classes = [d.name for d in _class_folders(base / chosen["eval"], what)]
    for role, split in chosen.items():
        found = [d.name for d in _class_folders(base / split, what)]
        if role != "eval" and found != classes:
            extra = sorted(set(found) ^ set(classes))[:6]
            raise UserError(f"{what}: class folders of {split}/ and {chosen['eval']}/ differ: {extra}")
    out = ClassificationData(classes=classes, classnames=None, templates=None)
    cn, tp = base / "classnames.txt", base / "templates.txt"
    if cn.is_file():
        out.classnames = _read_lines(cn)
        if len(out.classnames) != len(classes):
            raise UserError(
                f"{cn}: {len(out.classnames)} names for {len(classes)} class folders; "
                f"expected one display name per line, in sorted folder order"
            )
        out.meta_files.append(cn)
    else:
        out.classnames = list(classes)
    if tp.is_file():
        out.templates = _read_lines(tp)
        if not out.templates:
            raise UserError(f"{tp}: no templates; write one per line with '{{c}}' for the class name")
        bad = [t for t in out.templates if "{c}" not in t]
        if bad:
            raise UserError(f"{tp}: every template needs '{{c}}' for the class name; not: {bad[0]!r}")
        out.meta_files.append(tp)
    for role, split in chosen.items():
        per = train_per_class if role == "train" else None
        out.splits[role] = _folder_split(base / split, classes, what, per)
    return out


def _pick_split(base: Path, names: Any, what: str) -> str:
    names = [names] if isinstance(names, str) else list(names)
    for n in names:
        if (base / n).is_dir():
            return n
    want = " or ".join(f"{base}/{n}/" for n in names)
    raise UserError(f"{what}: expected {want} (with <class>/<images> inside), found {_listing(base)}")


@FORMATS.register("wds")
def webdataset(root: Path, path: str, splits: dict[str, Any], **_: Any) -> ClassificationData:
    """CLIP_benchmark's WebDataset layout (data/wds.py): `cls` labels, classnames.txt and
    zeroshot_classification_templates.txt at the root."""
    from silc_bench.data import wds

    roles = {role: (names if isinstance(names, str) else list(names)[0]) for role, names in splits.items()}
    base = wds.locate(path, root, list(roles.values()))
    if wds.dataset_type(base) == "retrieval":
        raise UserError(f"wds {base}: dataset_type.txt says retrieval; run it with --task retrieval")
    classes = wds.classnames(base)
    if not classes:
        raise UserError(f"wds {base}: classification needs classnames.txt (one class name a line)")
    tmpl = base / "zeroshot_classification_templates.txt"
    meta = [p for p in (base / "classnames.txt", tmpl) if p.is_file()]
    out = ClassificationData(classes=classes, classnames=classes, templates=wds.templates(base))
    out.meta_files = meta
    for role, split in roles.items():
        shard_files = wds.shards(base, split)
        found = wds.samples(shard_files)
        if not found or any("cls" not in s for s in found):
            raise UserError(f"wds {base}/{split}: every sample needs a `cls` label (classification)")
        labels = wds.labels([s["cls"] for s in found])
        if labels.min() < 0 or labels.max() >= len(classes):
            raise UserError(f"wds {base}/{split}: labels run {labels.min()}..{labels.max()}, "
                            f"but classnames.txt names {len(classes)} classes")  # fmt: skip
        images = [wds.image_of(s, f"wds {base}/{split}") for s in found]
        fingerprint = files_fingerprint(base, shard_files, full=meta)
        digests = [m.digest for m in images]  # the loader checks the bytes it decodes against them
        out.splits[role] = ImageSplit(split, images, labels, wds.read_image, fingerprint, str, digests)
    return out


_WNID = re.compile(r"^n\d{8}$")


@FORMATS.register("imagenet")
def imagenet(
    root: Path, path: str, splits: dict[str, Any], train_per_class: int | None = None, **_: Any
) -> ClassificationData:
    """`<root>/imagenet/{train,val}/<wnid>/*`: the 1000 classes, in sorted wnid order."""
    base = root / path
    what = f"imagenet {base}"
    if not base.is_dir():
        raise UserError(f"dataset folder not found: {base} (expected <data-root>/{path}/val/<wnid>/*)")
    out: ClassificationData | None = None
    for role, split in splits.items():
        sdir = base / split
        dirs = _class_folders(sdir, what)
        wnids = [d.name for d in dirs]
        bad = [w for w in wnids if not _WNID.match(w)]
        if len(wnids) != 1000 or bad:
            raise UserError(
                f"{what}: expected 1000 wnid folders (n01440764 ...) in {sdir}, "
                f"found {len(wnids)}" + (f", including {bad[:3]}" if bad else "")
            )
        if out is None:
            out = ClassificationData(classes=wnids, classnames=None, templates=None)
        per = train_per_class if role == "train" else None
        out.splits[role] = _folder_split(sdir, wnids, what, per, fixed_classes=True)
    assert out is not None
    return out


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR's pickles hold dicts of bytes, lists and numpy arrays; allow nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("copyreg", "_reconstructor"),
        ("builtins", "object"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_cifar_pickle(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"cifar100: expected file {path}, found {_listing(path.parent)}")
    try:
        d = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except Exception as e:
        raise UserError(f"{path}: not a CIFAR-100 python pickle ({type(e).__name__}: {e})") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


@FORMATS.register("cifar100")
def cifar100(root: Path, path: str, splits: dict[str, Any], **_: Any) -> ClassificationData:
    """torchvision's python layout `<root>/cifar-100-python/{train,test,meta}`."""
    base = root / path
    if not base.is_dir():
        raise UserError(f"dataset folder not found: {base} (expected {path}/{{train,test,meta}})")
    meta = _load_cifar_pickle(base / "meta")
    classes = list(meta["fine_label_names"])
    out = ClassificationData(
        classes=classes, classnames=[c.replace("_", " ") for c in classes], templates=None
    )
    for role, split in splits.items():
        f = base / split
        d = _load_cifar_pickle(f)
        try:
            data = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            labels = np.asarray(d["fine_labels"], dtype=np.int64)
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"{f}: not a CIFAR-100 split ({type(e).__name__}: {e})") from None
        if labels.ndim != 1 or len(labels) != len(data):
            raise UserError(f"{f}: {len(labels)} fine labels for {len(data)} images")
        bad = labels[(labels < 0) | (labels >= len(classes))]
        if bad.size:
            raise UserError(f"{f}: fine labels {sorted(set(bad.tolist()))[:5]} outside 0..{len(classes) - 1}")
        fp = files_fingerprint(root, [], full=[f, base / "meta"])
        out.splits[role] = ImageSplit(
            split,
            list(range(len(labels))),
            labels,
            lambda i, data=data: Image.fromarray(data[i]),
            fp,
            lambda i, split=split: f"{base / split}[{i}]",
        )
    return out


def read_classification(data_cfg: dict[str, Any], data_root: Path) -> ClassificationData:
    from silc_bench.data.generated import resolve_root

    cfg, root = resolve_root(data_cfg, data_root)
    fmt = FORMATS.get(cfg.pop("format"))
    return fmt(root, **cfg)
