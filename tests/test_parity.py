"""Parity with the reference implementations installed in the test setup.

- CLIP_benchmark 1.6.2 `zeroshot_classification.evaluate` and `zeroshot_retrieval.evaluate`
  (amp off), on the same model, data, class names and templates;
- a direct transcription of big_vision's `fewshot_lsr` few-shot probe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from silc_bench.api import EvalOptions, evaluate
from silc_bench.data.classification import read_classification
from silc_bench.data.retrieval import read_karpathy
from silc_bench.metrics.fewshot import fewshot_accuracy, fewshot_indices

zsc = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")
zsr = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")


def _accuracy_numpy2(output, target, topk=(1,)):
    """CLIP_benchmark's `accuracy` with its numpy-2 `float()` bug fixed; same `topk` call."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    n = len(target)
    return [float(correct[:k].reshape(-1).float().sum(0, keepdim=True).cpu().numpy()[0]) / n for k in topk]


class _Split(torch.utils.data.Dataset):
    def __init__(self, split, transform, classes):
        self.split, self.transform, self.classes = split, transform, classes

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        return self.transform(self.split.read(self.split.items[i])), int(self.split.labels[i])


def _opts(tmp_path: Path, data_root: Path, **kw) -> EvalOptions:
    return EvalOptions(
        data_root=data_root, out=tmp_path, device="cpu", workers=0, progress=False, batch_size=7, **kw
    )


@pytest.mark.parametrize("dataset", ["imagefolder", "cifar100"])
def test_zero_shot_classification_matches_clip_benchmark(
    dataset, trained_model, data_root, tmp_path, monkeypatch
):
    monkeypatch.setattr(zsc, "accuracy", _accuracy_numpy2)
    name = f"imagefolder:{data_root / 'shapes'}" if dataset == "imagefolder" else "cifar100"
    ours = evaluate(trained_model, "zs-cls", name, _opts(tmp_path, data_root)).result
    from silc_bench.config import load_task
    from silc_bench.features.prompts import read_asset

    spec = load_task("zs-cls", name)
    data = read_classification(spec.data, data_root)
    templates = data.templates or read_asset("templates", "cifar")
    ds = _Split(data.splits["eval"], trained_model.preprocess.transform(), data.classnames)
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    ref = zsc.evaluate(
        trained_model.module, loader, trained_model.tokenizer, data.classnames, templates, "cpu", amp=False
    )
    assert ours.protocol["templates_sha256"]  # the protocol records what was used
    assert ours.metrics["top1"] == pytest.approx(100 * ref["acc1"], abs=1e-4)
    assert ours.metrics["top5"] == pytest.approx(100 * ref["acc5"], abs=1e-4)
    assert ours.metrics["mean_per_class_recall"] == pytest.approx(
        100 * ref["mean_per_class_recall"], abs=1e-4
    )
    if dataset == "imagefolder":  # a meaningful comparison: not a constant prediction
        assert 20.0 < ours.metrics["top1"] < 100.0 and len(set(ours.per_class.values())) > 1


class _Captions(torch.utils.data.Dataset):
    def __init__(self, data, transform):
        self.data, self.transform = data, transform
        self.caps = [[] for _ in range(len(data.images))]
        for c, i in zip(data.captions, data.text_to_image):
            self.caps[i].append(c)

    def __len__(self):
        return len(self.caps)

    def __getitem__(self, i):
        return self.transform(self.data.images.read(self.data.images.items[i])), self.caps[i]


def _collate(batch):
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


@pytest.mark.parametrize("dataset", ["coco", "flickr30k"])
def test_retrieval_matches_clip_benchmark(dataset, trained_model, data_root, tmp_path):
    ours = evaluate(trained_model, "retrieval", dataset, _opts(tmp_path, data_root)).result
    from silc_bench.config import load_task

    data = read_karpathy(load_task("retrieval", dataset).data, data_root)
    loader = torch.utils.data.DataLoader(
        _Captions(data, trained_model.preprocess.transform()), batch_size=4, collate_fn=_collate
    )
    ref = zsr.evaluate(
        trained_model.module, loader, trained_model.tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10]
    )
    assert ours.protocol["num_captions"] == len(data.captions)
    for k in (1, 5, 10):  # CLIP_benchmark's names are swapped
        assert ours.metrics[f"t2i_recall@{k}"] == pytest.approx(
            100 * ref[f"image_retrieval_recall@{k}"], abs=1e-4
        )
        assert ours.metrics[f"i2t_recall@{k}"] == pytest.approx(
            100 * ref[f"text_retrieval_recall@{k}"], abs=1e-4
        )


def _big_vision_transcription(x_train, y_train, x_test, y_test, num_classes, shots, seeds, l2):
    """big_vision fewshot_lsr, transcribed step by step (float32, eigh, bias column 100)."""
    out = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        class_indices = [rng.permutation(np.where(y_train == c)[0]) for c in range(num_classes)]
        for k in shots:
            idx = np.concatenate([ci[:k] for ci in class_indices])
            x, y = x_train[idx].astype(np.float32), y_train[idx]
            mean = np.mean(x, axis=0, keepdims=True)
            std = np.std(x, axis=0, keepdims=True) + 1e-5
            x = np.pad((x - mean) / std, ((0, 0), (0, 1)), constant_values=100.0)
            yy = 2.0 * np.eye(num_classes, dtype=np.float32)[y] - 1.0
            n, d = x.shape
            if n >= d:
                eigs, q = np.linalg.eigh(x.T @ x)
                rhs, lhs = q.T @ (x.T @ yy), q
            else:
                eigs, q = np.linalg.eigh(x @ x.T)
                rhs, lhs = q.T @ yy, x.T @ q
            w = (lhs * (1.0 / (eigs + l2)).reshape(1, -1)) @ rhs
            xt = np.pad((x_test - mean) / std, ((0, 0), (0, 1)), constant_values=100.0)
            out[(seed, k)] = 100.0 * float(np.mean(np.argmax(xt @ w, axis=1) == y_test))
    return out


@pytest.mark.parametrize("dim", [8, 40])  # both solver branches: N >= D and N < D
def test_fewshot_matches_big_vision_transcription(dim):
    rng = np.random.default_rng(0)
    c = 6
    centers = rng.normal(size=(c, dim)) * 2
    y_train = np.repeat(np.arange(c), 30)
    y_test = np.repeat(np.arange(c), 20)
    x_train = (centers[y_train] + rng.normal(size=(len(y_train), dim)) * 3).astype(np.float32)
    x_test = (centers[y_test] + rng.normal(size=(len(y_test), dim)) * 3).astype(np.float32)
    shots, seeds = (1, 5, 10, 25), (0, 1, 2)
    ours = fewshot_accuracy(x_train, y_train, x_test, y_test, c, shots, seeds, 1024.0)
    ref = _big_vision_transcription(x_train, y_train, x_test, y_test, c, shots, seeds, 1024.0)
    assert ours == pytest.approx(ref, abs=1e-9)
    assert len(set(ours.values())) > 2  # not a degenerate probe


def test_fewshot_closed_form_equals_direct_ridge_solve():
    """The eigh route is ridge regression: compare with a float64 linear solve."""
    from silc_bench.metrics.fewshot import fit_predict

    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 12)).astype(np.float32)
    y = rng.integers(0, 4, 50)
    xt = rng.normal(size=(30, 12)).astype(np.float32)
    for lam in (1.0, 1024.0):
        pred = fit_predict(x, y, xt, 4, lam)
        mu, sd = x.mean(0), x.std(0) + 1e-5
        xb = np.pad((x - mu) / sd, ((0, 0), (0, 1)), constant_values=100.0).astype(np.float64)
        yy = 2.0 * np.eye(4)[y] - 1.0
        w = np.linalg.solve(xb.T @ xb + lam * np.eye(xb.shape[1]), xb.T @ yy)
        xtb = np.pad((xt - mu) / sd, ((0, 0), (0, 1)), constant_values=100.0)
        assert (pred == np.argmax(xtb @ w, axis=1)).mean() >= 0.95


def test_fewshot_task_uses_sorted_order_and_pre_logits(trained_model, data_root, tmp_path):
    name = f"imagefolder:{data_root / 'shapes'}"
    res = evaluate(trained_model, "fs-cls", name, _opts(tmp_path, data_root)).result
    from silc_bench.config import load_task

    data = read_classification(load_task("fs-cls", name).data, data_root)
    tr, te = data.splits["train"], data.splits["eval"]
    assert [p.parent.name for p in tr.items] == sorted(p.parent.name for p in tr.items)
    tf = trained_model.preprocess.transform()
    feats = lambda s: trained_model.image_features(  # noqa: E731
        torch.stack([tf(s.read(i)) for i in s.items])
    )["pre_logits"].numpy()
    ref = _big_vision_transcription(
        feats(tr), tr.labels, feats(te), te.labels, 5, (1, 5, 10, 25), (0, 1, 2), 1024.0
    )
    # 6 training images a class: 10- and 25-shot are left out (a shorter draw under their name)
    assert res.protocol["shots_drawn"] == [1, 5] and res.protocol["shots_left_out"] == [10, 25]
    assert "10shot_top1" not in res.metrics
    for k in (1, 5):
        assert res.metrics[f"{k}shot_top1"] == pytest.approx(
            np.mean([ref[(s, k)] for s in (0, 1, 2)]), abs=1e-4
        )
        assert res.metrics[f"{k}shot_top1_seed1"] == pytest.approx(ref[(1, k)], abs=1e-4)
    assert res.seeds == [0, 1, 2]
    assert res.protocol["feature_dim"] == 64  # ViT-Tiny width: pre_logits, not the 32-d embedding
    assert fewshot_indices(tr.labels, 5, 1, 0).shape == (5,)
