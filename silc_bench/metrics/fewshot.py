"""big_vision's closed-form few-shot linear probe (`evaluators/fewshot_lsr.py`).

Ridge regression onto ±1 one-hot targets, solved through an eigendecomposition in
float32, with features standardised on the few-shot training subset and a constant
bias column of 100 (large, so the bias is almost unregularised). There is no grid
search: l2_reg is fixed (1024 by default).
"""

from __future__ import annotations

import numpy as np

BIAS_CONSTANT = 100.0


def fewshot_indices(labels: np.ndarray, num_classes: int, shots: int, seed: int) -> np.ndarray:
    """Indices of the k-shot subset for one seed.

    One `default_rng(seed)` draws a permutation per class, in class order; the first k of
    each are taken, so subsets are nested across k. A class with fewer than k samples
    contributes all it has.
    """
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(np.where(labels == c)[0]) for c in range(num_classes)]
    return np.concatenate([p[:shots] for p in perms]).astype(np.int64)


def _with_bias(x: np.ndarray) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 1)), constant_values=BIAS_CONSTANT)


def fit_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    num_classes: int,
    l2_reg: float,
) -> np.ndarray:
    """Fit the closed-form probe on (x_train, y_train) and return test predictions."""
    x = np.asarray(x_train, dtype=np.float32)
    mean = x.mean(axis=0, keepdims=True)
    std = x.std(axis=0, keepdims=True) + np.float32(1e-5)
    x = _with_bias((x - mean) / std)
    y = 2.0 * np.eye(num_classes, dtype=np.float32)[y_train] - 1.0
    n, d = x.shape
    if n >= d:
        eigs, q = np.linalg.eigh(x.T @ x)
        lhs, rhs = q, q.T @ (x.T @ y)
    else:
        eigs, q = np.linalg.eigh(x @ x.T)
        lhs, rhs = x.T @ q, q.T @ y
    scaling = (1.0 / (eigs + np.float32(l2_reg))).reshape(1, -1).astype(np.float32)
    w = (lhs * scaling) @ rhs
    xt = _with_bias((np.asarray(x_test, dtype=np.float32) - mean) / std)
    return np.argmax(xt @ w, axis=1)


def fewshot_accuracy(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    shots: tuple[int, ...],
    seeds: tuple[int, ...],
    l2_reg: float = 1024.0,
) -> dict[tuple[int, int], float]:
    """Top-1 accuracy (in %) for every (seed, shots) pair."""
    out: dict[tuple[int, int], float] = {}
    y_train = np.asarray(y_train, dtype=np.int64)
    for seed in seeds:
        for k in shots:
            idx = fewshot_indices(y_train, num_classes, k, seed)
            pred = fit_predict(x_train[idx], y_train[idx], x_test, num_classes, l2_reg)
            out[(seed, k)] = 100.0 * float(np.mean(pred == y_test))
    return out
