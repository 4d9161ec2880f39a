"""Metric maths on hand-built inputs: exact values, including ties."""

import numpy as np
import pytest

from silc_bench.metrics.fewshot import fewshot_indices
from silc_bench.metrics.ranking import (
    argmax_low,
    mean_per_class_recall,
    rank_of,
    retrieval_recall,
    topk_accuracy,
)


def test_rank_breaks_ties_towards_lower_index():
    s = np.array([[0.5, 0.9, 0.9, 0.1]])
    assert rank_of(s, np.array([1]))[0] == 0
    assert rank_of(s, np.array([2]))[0] == 1  # tied with column 1, which is lower
    assert rank_of(s, np.array([0]))[0] == 2
    assert rank_of(s, np.array([3]))[0] == 3


def test_topk_on_4x8():
    logits = np.array(
        [
            [9, 1, 2, 3, 4, 5, 6, 7],  # target 0: rank 0
            [1, 2, 3, 4, 5, 6, 7, 8],  # target 0: rank 7
            [5, 5, 5, 5, 5, 5, 5, 5],  # all tied, target 3: rank 3
            [0, 8, 8, 1, 1, 1, 1, 1],  # target 2: tied with 1 → rank 1
        ],
        dtype=np.float32,
    )
    targets = np.array([0, 0, 3, 2])
    acc = topk_accuracy(logits, targets, (1, 2, 4, 5))
    assert acc == {1: 25.0, 2: 50.0, 4: 75.0, 5: 75.0}
    assert argmax_low(logits).tolist() == [0, 7, 0, 1]


def test_mean_per_class_recall_matches_definition():
    targets = np.array([0, 0, 0, 1, 2, 2])
    pred = np.array([0, 1, 0, 1, 0, 2])
    # recalls: class0 2/3, class1 1/1, class2 1/2; class 3 has no samples and is left out
    assert mean_per_class_recall(pred, targets, 4) == pytest.approx(100 * (2 / 3 + 1 + 0.5) / 3)


def test_mean_per_class_recall_equals_sklearn():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 7, 200), rng.integers(0, 9, 200)
    assert mean_per_class_recall(p, t, 9) == pytest.approx(100 * sklearn.balanced_accuracy_score(t, p))


def test_retrieval_recall_hand_built():
    # 3 images, 5 captions; caption→image owners
    owner = np.array([0, 0, 1, 2, 2])
    img = np.eye(3, dtype=np.float32)
    txt = np.array(
        [
            [1, 0, 0],  # caption 0 → image 0 best
            [0, 1, 0],  # caption 1 (of image 0) → image 1 best: rank of 0 is 1 (tie 0,2 at 0)
            [0, 1, 0],  # caption 2 → image 1
            [0.6, 0, 0.8],  # caption 3 → image 2 best
            [0.8, 0, 0.6],  # caption 4 (of image 2) → image 0 best, image 2 second
        ],
        dtype=np.float32,
    )
    r = retrieval_recall(img, txt, owner, ks=(1, 2))
    # t2i ranks: c0 0, c1 1, c2 0, c3 0, c4 1  → R@1 3/5, R@2 5/5
    assert r["t2i_recall@1"] == pytest.approx(60.0)
    assert r["t2i_recall@2"] == pytest.approx(100.0)
    # i2t: image0 scores over captions [1,0,0,.6,.8] → its caption 0 is rank 0
    # image1 [0,1,1,0,0] → caption 1 (not its own) ties caption 2 and is lower → own rank 1
    # image2 [0,0,0,.8,.6] → caption 3 is rank 0
    assert r["i2t_recall@1"] == pytest.approx(200 / 3)
    assert r["i2t_recall@2"] == pytest.approx(100.0)


def test_fewshot_indices_nested_and_short_classes():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    one = fewshot_indices(labels, 3, 1, seed=0)
    five = fewshot_indices(labels, 3, 5, seed=0)
    assert len(one) == 3 and len(five) == 3 + 2 + 5  # classes 0 and 1 give all they have
    per_class = [five[labels[five] == c][:1] for c in range(3)]
    assert np.concatenate(per_class).tolist() == one.tolist()  # nested across k
    assert fewshot_indices(labels, 3, 5, seed=1).tolist() != five.tolist()


def test_retrieval_reads_both_directions_from_one_score_matrix():
    """Up to FULL_MATRIX_MAX scores, i2t ranks come from the transpose of the same
    `text @ image.T` product as t2i (CLIP_benchmark's `scores.T`), not from a second
    `image @ text.T` product, whose float32 rounding can differ and reorder near-ties.
    Duplicate images and captions make exact ties that the rule must break by index."""
    from silc_bench.metrics.ranking import rank_of, ranking_method, retrieval_recall

    rng = np.random.default_rng(3)
    base = rng.standard_normal((12, 64)).astype(np.float32)
    img = base[rng.integers(0, 12, 40)]  # duplicated images: exact ties in a column
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    idx = np.repeat(np.arange(40), 3)
    txt = img[idx] + 0.3 * rng.standard_normal((120, 64)).astype(np.float32)
    txt[1::3] = txt[0::3]  # duplicated captions: exact ties in a row
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    sc = txt @ img.T
    want_t2i = rank_of(sc, idx)
    caps = [np.flatnonzero(idx == i) for i in range(40)]
    best = np.array([c[np.argmax(sc.T[i, c])] for i, c in enumerate(caps)])
    want_i2t = rank_of(sc.T, best)
    got = retrieval_recall(img, txt, idx)
    for k in (1, 5, 10):
        assert got[f"t2i_recall@{k}"] == 100.0 * float(np.mean(want_t2i < k))
        assert got[f"i2t_recall@{k}"] == 100.0 * float(np.mean(want_i2t < k))
    assert ranking_method(5000, 25000).startswith("one text × image score matrix")
    assert ranking_method(100_000, 1_000_000).startswith("chunked")


def test_blocked_retrieval_equals_the_full_matrix_with_ties():
    """Ranks counted over (chunk × chunk) blocks equal ranks on the whole matrix, ties
    (integer-valued embeddings) and captions out of image order included."""
    from silc_bench.metrics.ranking import rank_of, retrieval_recall

    rng = np.random.default_rng(0)
    for trial in range(4):
        n = int(rng.integers(5, 40))
        scale = 1.0 if trial % 2 == 0 else 4.0  # integer-valued: every product exact, many ties
        img = np.round(scale * rng.standard_normal((n, 6))).astype(np.float32)
        txt = np.round(scale * rng.standard_normal((n * 5, 6))).astype(np.float32)
        idx = rng.permutation(np.repeat(np.arange(n), 5))
        sc = txt @ img.T
        t2i = rank_of(sc, idx)
        caps = [np.flatnonzero(idx == i) for i in range(n)]
        best = np.array([c[np.argmax(sc.T[i, c])] for i, c in enumerate(caps)])
        i2t = rank_of(sc.T.copy(), best)
        for chunk, full_max in ((3, 0), (7, 0), (4096, 0), (3, 10**9)):
            got = retrieval_recall(img, txt, idx, chunk=chunk, full_max=full_max)
            for k in (1, 5, 10):
                assert got[f"t2i_recall@{k}"] == 100.0 * float(np.mean(t2i < k))
                assert got[f"i2t_recall@{k}"] == 100.0 * float(np.mean(i2t < k))
