"""How far a metric would move on another draw of the test images.

An accuracy or recall is a mean of independent per-query hits, so its standard error has
a closed form, sqrt(p(1-p)/n) (lm-eval's stderr column). mIoU has none: it is a ratio of
areas summed over images, averaged over the classes present. So it gets a percentile
bootstrap over images: resample the images with replacement, sum the resample's
per-image intersection and union areas, and recompute mIoU from those sums exactly as
mmseg's IoUMetric computes it from the whole split's.

Cheap at any size: each chunk of resamples is an (N, images) index matrix, turned into
per-image counts with one bincount and into summed areas with one matrix product. The
areas are whole pixel counts, so the float64 sums are exact and do not depend on order.
"""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP_SEED = 0  # fixed and recorded: the same resamples give the same interval, every run
MAX_RESAMPLES = 100_000  # beyond it a number is a typo: the interval no longer moves
_CHUNK_CELLS = 1 << 22  # index-matrix cells drawn at once: bounded memory for any N and split


def binomial_se(p_points: float, n: int) -> float:
    """sqrt(p(1-p)/n) in points, for a percentage `p_points` averaged over `n` queries."""
    q = p_points / 100.0
    return 100.0 * math.sqrt(max(q * (1.0 - q), 0.0) / n)


def resamples_problem(n: object) -> str | None:
    """Why `n` is not a bootstrap size (None: it is). 0 is off; 1 resample has no spread."""
    if isinstance(n, bool) or not isinstance(n, int):
        return f"--bootstrap must be a whole number of resamples, not {n!r}"
    if n != 0 and not 2 <= n <= MAX_RESAMPLES:
        return f"--bootstrap must be 0 (off) or 2..{MAX_RESAMPLES:,} resamples, not {n:,}"
    return None


def miou_from_areas(intersect: np.ndarray, union: np.ndarray) -> np.ndarray:
    """mIoU in points over the last axis (classes): the mean of intersect/union over the
    classes whose union is not empty (mmseg's nanmean); NaN where no class has any pixel."""
    valid = union > 0
    iou = np.divide(intersect, union, out=np.zeros(np.broadcast(intersect, union).shape), where=valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * iou.sum(axis=-1) / valid.sum(axis=-1)


def bootstrap_miou(intersect: np.ndarray, union: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """mIoU of each of `resamples` resamples of the images, from per-image (images, classes)
    areas. Row b resamples images `default_rng(seed).integers(0, images, (resamples, images))[b]`;
    drawing in chunks of rows keeps that stream, so the result does not depend on the chunk."""
    inter = np.asarray(intersect, dtype=np.float64)
    uni = np.asarray(union, dtype=np.float64)
    if inter.ndim != 2 or inter.shape != uni.shape or inter.shape[0] < 1:
        raise ValueError(f"per-image areas must be (images, classes), got {inter.shape} and {uni.shape}")
    m = inter.shape[0]
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // m)
    out = np.empty(resamples)
    for start in range(0, resamples, rows):
        k = min(rows, resamples - start)
        idx = rng.integers(0, m, size=(k, m))
        flat = (idx + (np.arange(k) * m)[:, None]).ravel()
        counts = np.bincount(flat, minlength=k * m).reshape(k, m).astype(np.float64)
        out[start : start + k] = miou_from_areas(counts @ inter, counts @ uni)
    return out


def bootstrap_interval(
    intersect: np.ndarray, union: np.ndarray, resamples: int, seed: int = BOOTSTRAP_SEED
) -> dict[str, object] | None:
    """The percentile 95% interval and the standard error (sd of the resamples) of mIoU, in
    points, as a result records it; None when fewer than two resamples have any labelled
    pixel (mIoU undefined), which only a split of unlabelled images can give."""
    reps = bootstrap_miou(intersect, union, resamples, seed)
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        return None
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return {
        "bootstrap": int(resamples),
        "seed": int(seed),
        "ci95": [round(float(lo), 4), round(float(hi), 4)],
        "se": round(float(np.std(reps, ddof=1)), 4),
    }
