"""MMSeg datasets in their standard layouts, built through mmseg's own registry.

A zs-seg dataset YAML names an mmseg dataset class and its paths; this module checks the
layout (so a wrong folder is named, not reported as an empty dataset), builds the test
pipeline (load image, keep-ratio Resize(scale=(2048, S)), load annotations after the
resize so the ground truth keeps its resolution, pack), and checks each label map.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from silc_bench.core.errors import UserError

_DATA_KEYS = {
    "format",
    "dataset",
    "data_root",
    "data_prefix",
    "img_suffix",
    "seg_map_suffix",
    "reduce_zero_label",
    "ann_file",
    "classes",
    "num_classes",
    "background",
    "metainfo_classes",
}


def _expect_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        parent = path.parent
        found = sorted(p.name for p in parent.iterdir())[:6] if parent.is_dir() else "nothing"
        raise UserError(f"{what}: expected folder {path}, found {found} in {parent}")


def build_dataset(data: dict[str, Any], data_root: Path, resize: int, classes: list[str] | None):  # noqa: ANN201
    """The mmseg dataset object, test pipeline included."""
    # (this package's __init__ has put the mmcv.ops stand-in in place before mmseg is imported)
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from silc_bench.data.generated import resolve_root
    from silc_bench.segmentation import loading

    data, data_root = resolve_root(data, data_root)
    unknown = set(data) - _DATA_KEYS
    if unknown:
        raise UserError(f"zs-seg data: unknown key(s) {sorted(unknown)}")
    name = data["dataset"]
    root = Path(data_root) / data["data_root"]
    what = f"{name} under --data-root {data_root}"
    _expect_dir(root, what)
    prefix = dict(data["data_prefix"])
    for key in ("img_path", "seg_map_path"):
        _expect_dir(root / prefix[key], what)
    cfg: dict[str, Any] = dict(
        type=name,
        data_root=str(root),
        data_prefix=prefix,
        reduce_zero_label=bool(data.get("reduce_zero_label", False)),
        test_mode=True,
        pipeline=[  # mmseg's loaders, hashing the bytes they decode (segmentation/loading.py)
            loading.HashedLoadImageFromFile(),
            dict(type="Resize", scale=(2048, int(resize)), keep_ratio=True),
            loading.HashedLoadAnnotations(),
            loading.pack_with_digests(),
        ],
    )
    for key in ("img_suffix", "seg_map_suffix"):
        if key in data:
            cfg[key] = data[key]
    if data.get("ann_file"):
        ann = root / data["ann_file"]
        if not ann.is_file():
            raise UserError(f"{what}: expected the split file {ann}")
        cfg["ann_file"] = str(ann)
    if data.get("metainfo_classes"):
        if classes is None or len(classes) != data["num_classes"]:
            raise UserError(f"{name}: metainfo classes need {data['num_classes']} names")
        cfg["metainfo"] = dict(classes=tuple(classes))
    init_default_scope("mmseg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = DATASETS.build(cfg)
        except OSError as e:  # a symlink loop or an unreadable folder while mmseg lists files
            raise UserError(f"{what}: cannot list {e.filename or root}: {e.strerror or e}") from None
    if len(ds) == 0:
        suffix = cfg.get("img_suffix", "the dataset's image suffix")
        raise UserError(
            f"{what}: no images ({suffix}) with label maps found under {root / prefix['img_path']}"
        )
    n_meta = len(ds.metainfo["classes"])
    if n_meta != data["num_classes"]:
        raise UserError(f"{name}: mmseg lists {n_meta} classes, the task expects {data['num_classes']}")
    return ds


def seg_fingerprint(
    ds: Any, data: dict[str, Any], classes: list[str], digests: list[str] | None = None
) -> str:
    """Content fingerprint of an mmseg dataset: every image and label map, hashed whole and
    in the dataset's order, plus the data config and the class list. `digests`, if given,
    receives each file's sha256 (image, label map, next image, ...): what the loop checks
    the bytes it decoded against."""
    from silc_bench.core.hashing import files_fingerprint, hash_obj

    root = Path(ds.data_root)
    infos = (ds.get_data_info(i) for i in range(len(ds)))
    files = [Path(p) for info in infos for p in (info["img_path"], info["seg_map_path"])]
    # files_fingerprint names files relative to a root; mmseg may list files outside it
    rel_root = Path(os.path.commonpath([root, *files])) if files else root
    return "sha256:" + hash_obj([files_fingerprint(rel_root, files, digests=digests), data, classes])


def check_label_map(label: np.ndarray, image_hw: tuple[int, int], num_classes: int, path: str) -> None:
    """Refuse a label map whose size differs from its image or whose values are out of range.

    Scoring such a map would silently count garbage: mmseg's IoUMetric drops values >= C
    without a word.
    """
    if label.ndim != 2:
        raise UserError(
            f"label map {path} has shape {tuple(label.shape)}; expected one channel of class indices"
        )
    if tuple(label.shape[-2:]) != tuple(image_hw):
        raise UserError(
            f"label map {path} is {label.shape[-2]}x{label.shape[-1]} but its image is "
            f"{image_hw[0]}x{image_hw[1]}"
        )
    bad = np.unique(label[(label != 255) & ((label < 0) | (label >= num_classes))])
    if bad.size:
        raise UserError(
            f"label map {path} holds values {bad[:8].tolist()} outside [0, {num_classes - 1}] "
            f"and 255 (after reduce_zero_label); wrong dataset or wrong label files?"
        )
