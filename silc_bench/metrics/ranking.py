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


def _chunked_ranks(
    queries: np.ndarray, keys: np.ndarray, positives: list[np.ndarray], chunk: int
) -> np.ndarray:
    """Rank of each query's best positive key (lowest index on ties) among all keys,
    counted over (chunk × chunk) score blocks, for sets too large for one score matrix.

    "Any positive in the top k" is "the best positive ranks below k". Counting is additive
    over column blocks, and every score, the positives' included, is read from the block
    product it is compared in, so the count is consistent; but a block product may round
    a score differently from one whole-matrix product (another GEMM shape), so where two
    scores tie to the last bit the order can differ from the reference's. The result
    records which way its ranks were counted (`ranking`).
    """
    ranks = np.zeros(len(queries), dtype=np.int64)
    starts = range(0, len(keys), chunk)
    for r in range(0, len(queries), chunk):
        q = queries[r : r + chunk]
        pos = positives[r : r + chunk]
        pr = np.concatenate([np.full(len(p), i) for i, p in enumerate(pos)])
        pc = np.concatenate(pos).astype(np.int64)
        blocks = [q @ keys.T] if len(starts) == 1 else None  # one block: computed once
        best = np.full(len(q), -np.inf, dtype=np.float64)
        best_col = np.full(len(q), np.iinfo(np.int64).max)
        for b, c in enumerate(starts):  # pass 1: each row's best positive, from its block
            sc = blocks[b] if blocks else q @ keys[c : c + chunk].T
            sel = (pc >= c) & (pc < c + sc.shape[1])
            rows, cols = pr[sel], pc[sel]
            v = sc[rows, cols - c].astype(np.float64)
            better = (v > best[rows]) | ((v == best[rows]) & (cols < best_col[rows]))
            for i in np.lexsort((cols, -v, rows))[::-1]:  # best candidate per row applied last
                if better[i]:
                    best[rows[i]], best_col[rows[i]] = v[i], cols[i]
        for b, c in enumerate(starts):  # pass 2: count what ranks ahead of it
            sc = blocks[b] if blocks else q @ keys[c : c + chunk].T
            col = np.arange(c, c + sc.shape[1])[None, :]
            t = best[:, None].astype(np.float32)
            ahead = (sc > t) | ((sc == t) & (col < best_col[:, None]))
            ranks[r : r + chunk] += ahead.sum(axis=1)
    return ranks


FULL_MATRIX_MAX = 2**28  # scores held at once: 1 GiB of float32, ~1.75 GiB peak with rank_of's masks;
# COCO 5k × 25k is 2**27


CHUNK = 2048


def _one_matrix(n_images: int, n_captions: int, full_max: int) -> bool:
    """The one place that decides between one score matrix and blocks."""
    return n_images * n_captions <= full_max


def ranking_method(
    n_images: int, n_captions: int, chunk: int = CHUNK, full_max: int = FULL_MATRIX_MAX
) -> str:
    """How `retrieval_recall` counts ranks for this size (recorded in the result)."""
    if _one_matrix(n_images, n_captions, full_max):
        return "one text × image score matrix (as CLIP_benchmark)"
    return f"chunked: {chunk} × {chunk} score blocks (the set exceeds {full_max:,} scores)"


def retrieval_recall(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    text_to_image: np.ndarray,
    ks: tuple[int, ...] = (1, 5, 10),
    chunk: int = CHUNK,
    full_max: int = FULL_MATRIX_MAX,
) -> dict[str, float]:
    """Image→text and text→image recall@k (in %) from L2-normalised embeddings.

    i2t: share of images with at least one of their captions in the top k captions.
    t2i: share of captions whose image is in the top k images.
    Up to `full_max` scores, one matrix `text @ image.T` gives both directions (i2t reads
    its transpose), as CLIP_benchmark computes them, so each score is the same number in
    both and in the reference. Larger sets are counted over blocks (`_chunked_ranks`).
    """
    image_emb = np.ascontiguousarray(image_emb, dtype=np.float32)
    text_emb = np.ascontiguousarray(text_emb, dtype=np.float32)
    text_to_image = np.asarray(text_to_image, dtype=np.int64)
    n_img = image_emb.shape[0]
    captions_of: list[list[int]] = [[] for _ in range(n_img)]
    for t, i in enumerate(text_to_image):
        captions_of[i].append(t)
    if any(len(c) == 0 for c in captions_of):
        raise ValueError("every image needs at least one caption")
    if _one_matrix(n_img, len(text_emb), full_max):
        scores = text_emb @ image_emb.T
        t2i = rank_of(scores, text_to_image)
        per_image = scores.T
        best = np.array([c[int(np.argmax(per_image[i, c]))] for i, c in enumerate(captions_of)])
        i2t = rank_of(per_image, best)  # the best caption (lowest index on ties) decides
    else:
        t2i = _chunked_ranks(text_emb, image_emb, [np.array([i]) for i in text_to_image], chunk)
        i2t = _chunked_ranks(image_emb, text_emb, [np.asarray(c) for c in captions_of], chunk)
    out = {}
    for k in ks:
        out[f"i2t_recall@{k}"] = 100.0 * float(np.mean(i2t < k))
    for k in ks:
        out[f"t2i_recall@{k}"] = 100.0 * float(np.mean(t2i < k))
    return out
