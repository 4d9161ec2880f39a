"""The paper's qualitative figures: image, ground truth, then one prediction per model.

Predictions come from `--save-predictions` PNGs (the metric's label space, 255 = ignore),
made by running each model into a results folder when they are not there yet. The grid
shares one palette and a legend of the classes it shows. `--confusions` lists the class
pairs one model confuses and the other does not ("swivel chair/chair", "field/grass"),
from confusion matrices over the whole dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from silc_bench.results.key import model_dirname

IGNORE = 255


def palette(classes: list[str]) -> np.ndarray:
    """(C, 3) uint8. A class named by a colour ("red", ShapesWorld's classes) is drawn in
    that colour, "background" in dark grey, every other class in tab20's colours, then
    evenly spread hues. Ignore (255) is black."""
    import matplotlib
    from matplotlib.colors import hsv_to_rgb, is_color_like, to_rgb

    spare = [matplotlib.colormaps["tab20"](i)[:3] for i in range(20)]
    spare += [tuple(hsv_to_rgb((i / 29, 0.75, 0.9))) for i in range(29)]
    out = []
    for name in classes:
        word = name.strip().lower()
        if word == "background":
            out.append((0.25, 0.25, 0.25))
        elif word.isalpha() and is_color_like(word):
            out.append(to_rgb(word))
        else:
            out.append(spare[len(out) % len(spare)])
    return (np.asarray(out) * 255).round().astype(np.uint8)


def colourise(label: np.ndarray, pal: np.ndarray) -> np.ndarray:
    out = np.zeros((*label.shape, 3), dtype=np.uint8)
    ok = label != IGNORE
    out[ok] = pal[np.clip(label[ok], 0, len(pal) - 1)]
    return out


def samples(task_dataset: str, data_root: Path, n: int | None) -> tuple[list[dict], list[str]]:
    """[(image path, ground truth in the metric's label space)], class names: via mmseg."""
    from silc_bench.config import load_task
    from silc_bench.features.prompts import read_asset
    from silc_bench.segmentation.dataset import build_dataset

    spec = load_task("zs-seg", task_dataset)
    classes = [c.strip() for c in read_asset("classnames", f"mmseg-{spec.data['classes']}")]
    ds = build_dataset(spec.data, data_root, int(spec.protocol.get("resize", 448)), classes)
    out = []
    for i in range(len(ds) if n is None else min(n, len(ds))):
        item = ds[i]
        sample = item["data_samples"]
        gt = sample.gt_sem_seg.data.numpy()[0].astype(np.int64)
        out.append({"image": sample.metainfo["img_path"], "gt": gt})
    return out, classes


def _prediction(folder: Path, image: str) -> np.ndarray:
    stem = Path(image).name.rsplit(".", 1)[0]
    return np.asarray(Image.open(folder / f"{stem}.png")).astype(np.int64)


def grid(
    models: list[str], dataset: str, pred_dirs: dict[str, Path], data_root: Path, n: int, out: Path
) -> Path:
    """Write the figure PNG: rows of image, ground truth, one prediction per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows, classes = samples(dataset, data_root, n)
    pal = palette(classes)
    cols = 2 + len(models)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.2 * cols, 2.2 * len(rows) + 0.8), squeeze=False)
    shown: set[int] = set()
    for r, s in enumerate(rows):
        panels = [np.asarray(Image.open(s["image"]).convert("RGB")), colourise(s["gt"], pal)]
        labels = [s["gt"]]
        for m in models:
            pred = _prediction(pred_dirs[m], s["image"])
            labels.append(pred)
            panels.append(colourise(pred, pal))
        for lab in labels:
            shown |= {int(v) for v in np.unique(lab) if v != IGNORE}
        for c, (ax, panel) in enumerate(zip(axes[r], panels)):
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(["image", "ground truth", *models][c], fontsize=9)
    handles = [Patch(color=pal[c] / 255, label=classes[c]) for c in sorted(shown)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=8, frameon=False)
    fig.suptitle(f"zs-seg on {dataset}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(handles) // 7), 1, 0.97))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{'_vs_'.join(model_dirname(m) for m in models)}_{dataset}.png"
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def confusion(dataset: str, pred_dir: Path, data_root: Path) -> np.ndarray:
    """(C, C) pixel counts: rows ground truth, columns prediction (ignore left out)."""
    rows, classes = samples(dataset, data_root, None)
    c = len(classes)
    mat = np.zeros((c, c), dtype=np.int64)
    for s in rows:
        gt, pred = s["gt"], _prediction(pred_dir, s["image"])
        ok = (gt != IGNORE) & (pred != IGNORE)
        np.add.at(mat, (gt[ok], pred[ok]), 1)
    return mat


def confusion_pairs(a: np.ndarray, b: np.ndarray, classes: list[str], min_rate: float = 0.1) -> list[tuple]:
    """(true class, predicted as, rate A, rate B): pairs A confuses (≥ min_rate of the true
    class's pixels) at least twice as often as B, worst first."""
    ra = a / np.maximum(a.sum(axis=1, keepdims=True), 1)
    rb = b / np.maximum(b.sum(axis=1, keepdims=True), 1)
    pairs = []
    for t in range(len(classes)):
        for p in range(len(classes)):
            if t != p and ra[t, p] >= min_rate and ra[t, p] >= 2 * rb[t, p]:
                pairs.append((classes[t], classes[p], float(ra[t, p]), float(rb[t, p])))
    return sorted(pairs, key=lambda x: x[2] - x[3], reverse=True)


def confusions_table(models: list[str], pairs: list[tuple]) -> str:
    from tabulate import tabulate

    a, b = models[0], models[1]
    rows = [[t, p, f"{100 * x:.1f}%", f"{100 * y:.1f}%"] for t, p, x, y in pairs] or [
        [f"none: {a} confuses no pair more than {b}", "", "", ""]
    ]
    return tabulate(
        rows, headers=["true class", "predicted as", a, b], tablefmt="github", disable_numparse=True
    )
