"""Reference points that make a segmentation mIoU readable: a uniform random prediction
and the best constant prediction (every pixel one class).

A model that predicts background everywhere already scores the best constant on a
background-heavy set, and a background threshold alone can reach it; a zero-shot number
means something only above both. Computed from the dataset's own label maps, with the
same per-class IoU and mean over classes present as mmseg's IoUMetric.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from silc_bench.config import TaskSpec, load_task


def _miou(inter: np.ndarray, union: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * float(np.nanmean(np.where(union > 0, inter / union, np.nan)))


def label_maps(spec: TaskSpec, data_root: Path = Path("data")) -> list[np.ndarray]:
    """A zs-seg dataset's label maps (mmseg layout, no `reduce_zero_label`), sorted by name."""
    from silc_bench.data.generated import resolve_root

    data, root = resolve_root(spec.data, data_root)
    if data.get("reduce_zero_label"):
        raise ValueError("reference points are defined for label maps used as they are")
    folder = root / data["data_root"] / data["data_prefix"]["seg_map_path"]
    return [np.array(Image.open(p)) for p in sorted(folder.glob(f"*{data['seg_map_suffix']}"))]


def reference_mious(labels: list[np.ndarray], num_classes: int, seed: int = 0) -> dict[str, float]:
    """{'uniform random': mIoU, 'best constant': mIoU, 'best constant class': index}."""
    rng = np.random.default_rng(seed)
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    # constant prediction c: class c's IoU is its pixel share; every other present class scores 0
    counts, total = np.zeros(num_classes), 0
    for gt in labels:
        valid = gt != 255
        pred = rng.integers(0, num_classes, gt.shape)
        for k in range(num_classes):
            a, b = (pred == k) & valid, (gt == k) & valid
            inter[k] += (a & b).sum()
            union[k] += (a | b).sum()
        counts += np.bincount(gt[valid].ravel(), minlength=num_classes)[:num_classes]
        total += int(valid.sum())
    present = counts > 0
    best = int(np.argmax(counts))
    const = float(100.0 * counts[best] / total / max(int(present.sum()), 1))
    return {"uniform random": _miou(inter, union), "best constant": const, "best constant class": best}


def dataset_references(dataset: str, data_root: Path = Path("data")) -> dict[str, float]:
    spec = load_task("zs-seg", dataset)
    return reference_mious(label_maps(spec, data_root), int(spec.data["num_classes"]))
