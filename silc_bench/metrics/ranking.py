"""Top-k accuracy, balanced accuracy and retrieval recall@k, with deterministic ties.

Ties always break towards the lower index, which is what a stable sort gives. Ranks are
computed by counting instead of sorting: the rank of item j in a row s is
#{s > s_j} + #{s == s_j and index < j}. That is exact, O(N·M), and needs no top-k call
whose tie order is unspecified (torch.topk's is).
"""

from __future__ import annotations

import numpy as np


def rank_of(scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """0-based rank of `scores[i, index[i]]` in row i, ties towards the lower column index."""
    scores = np.asarray(scores)
    index = np.asarray(index, dtype=np.int64)
    rows = np.arange(scores.shape[0])
    target = scores[rows, index][:, None]
    cols = np.arange(scores.shape[1])[None, :]
    ahead = (scores > target) | ((scores == target) & (cols < index[:, None]))
    return ahead.sum(axis=1)


def topk_accuracy(logits: np.ndarray, targets: np.ndarray, ks: tuple[int, ...]) -> dict[int, float]:
    """Share (in %) of rows whose target class ranks within the top k."""
    ranks = rank_of(logits, targets)
    return {k: 100.0 * float(np.mean(ranks < k)) for k in ks}


def argmax_low(logits: np.ndarray) -> np.ndarray:
    """Row-wise argmax; numpy returns the first maximum, i.e. the lower index on ties."""
    return np.asarray(logits).argmax(axis=1)


def per_class_recall(pred: np.ndarray, targets: np.ndarray, num_classes: int) -> dict[int, float]:
    """Recall (in %) of each class that has at least one sample; absent classes are omitted."""
    out: dict[int, float] = {}
    for c in range(num_classes):
        mask = targets == c
        if mask.any():
            out[c] = 100.0 * float(np.mean(pred[mask] == c))
    return out


def mean_per_class_recall(pred: np.ndarray, targets: np.ndarray, num_classes: int) -> float:
    """Balanced accuracy (in %): the mean recall over classes present in `targets`.

    This is sklearn's `balanced_accuracy_score`, which CLIP_benchmark reports.
    """
    recalls = per_class_recall(pred, targets, num_classes)
    return float(np.mean(list(recalls.values())))


def _best_positive(scores: np.ndarray, positives: list[np.ndarray]) -> np.ndarray:
    """For each row, the positive column with the highest score (lowest index on ties).

    The best positive has the smallest rank among a row's positives, so 'any positive in
    the top k' is exactly 'best positive ranks below k'.
    """
    best = np.empty(len(positives), dtype=np.int64)
    for i, cols in enumerate(positives):
        cols = np.sort(np.asarray(cols, dtype=np.int64))
        best[i] = cols[np.argmax(scores[i, cols])]
    return best


def retrieval_recall(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    text_to_image: np.ndarray,
    ks: tuple[int, ...] = (1, 5, 10),
    chunk: int = 1024,
) -> dict[str, float]:
    """Image→text and text→image recall@k (in %) from L2-normalised embeddings.

    i2t: share of images with at least one of their captions in the top k captions.
    t2i: share of captions whose image is in the top k images.
    """
    text_to_image = np.asarray(text_to_image, dtype=np.int64)
    n_img = image_emb.shape[0]
    captions_of: list[list[int]] = [[] for _ in range(n_img)]
    for t, i in enumerate(text_to_image):
        captions_of[i].append(t)
    if any(len(c) == 0 for c in captions_of):
        raise ValueError("every image needs at least one caption")
    t2i_ranks, i2t_ranks = [], []
    for s in range(0, text_emb.shape[0], chunk):
        sc = text_emb[s : s + chunk] @ image_emb.T
        t2i_ranks.append(rank_of(sc, text_to_image[s : s + chunk]))
    for s in range(0, n_img, chunk):
        sc = image_emb[s : s + chunk] @ text_emb.T
        pos = [np.asarray(c) for c in captions_of[s : s + chunk]]
        i2t_ranks.append(rank_of(sc, _best_positive(sc, pos)))
    t2i = np.concatenate(t2i_ranks)
    i2t = np.concatenate(i2t_ranks)
    out = {}
    for k in ks:
        out[f"i2t_recall@{k}"] = 100.0 * float(np.mean(i2t < k))
    for k in ks:
        out[f"t2i_recall@{k}"] = 100.0 * float(np.mean(t2i < k))
    return out
