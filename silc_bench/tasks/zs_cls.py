"""Zero-shot classification (docs/protocols.md): CLIP prompts, cosine logits, top-k.

Equal to CLIP_benchmark's `zeroshot_classification.evaluate` (amp off) on the same model,
data and templates, except that exact ties break towards the lower class index.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import torch

from silc_bench.core.errors import UserError
from silc_bench.data.classification import read_classification
from silc_bench.features.extract import image_features
from silc_bench.features.prompts import classifier_weights, resolve_prompts
from silc_bench.metrics.ranking import argmax_low, mean_per_class_recall, per_class_recall, topk_accuracy
from silc_bench.tasks.base import PLUGINS, TaskContext, TaskOutput, TaskPlugin


@dataclass
class ZsClsProtocol:
    classnames: str = "dataset"  # an asset name, or `dataset`
    templates: str = "imagenet"  # an asset name, or `dataset` (falls back to imagenet)
    canonicalize_text: bool = False  # big_vision: lowercase, strip punctuation
    bare_template: bool = False  # big_vision: add a bare "{c}" template
    topk: list[int] = field(default_factory=lambda: [1, 5])
    # the image geometry instead of the checkpoint's (its normalisation kept): big_vision's
    # config helper `resize(sz/0.875)|central_crop(sz)` is `squash_crop`
    resize: Literal["shortest", "squash", "squash_crop"] | None = None
    differences: list[str] = field(default_factory=list)  # from the reference, recorded as they are


def zero_shot_logits(ctx: TaskContext, p: ZsClsProtocol, split_role: str = "eval"):  # noqa: ANN201
    """Shared by zs-cls and anything else that needs (logits, labels, prompts, data)."""
    data = read_classification(ctx.spec.data, ctx.data_root)
    split = data.splits[split_role].head(ctx.limit)
    model = ctx.model
    if p.resize:  # the profile's geometry, the checkpoint's normalisation
        from dataclasses import replace

        from silc_bench.models.preprocess import Preprocess

        pp = Preprocess.from_dict({**model.preprocess.to_dict(), "resize": p.resize}, "zs-cls protocol")
        model = replace(model, preprocess=pp)
    prompts = resolve_prompts(
        p.classnames,
        p.templates,
        data.classnames,
        data.templates,
        len(data.classes),
        p.canonicalize_text,
        p.bare_template,
    )
    w = classifier_weights(model, prompts, ctx.cache, ctx.opts)
    feats = image_features(model, split, ctx.cache, ctx.opts, f"{ctx.spec.dataset}/{split.name}")
    img = torch.nn.functional.normalize(torch.from_numpy(feats["embed"]), dim=-1)
    logits = (img @ w).numpy()
    return logits, split, prompts, data


@PLUGINS.register("zs-cls")
class ZeroShotClassification(TaskPlugin):
    protocol_cls = ZsClsProtocol
    headline = ("top1", "top5", "mean_per_class_recall")

    @staticmethod
    def fingerprint(spec, protocol, data_root):  # noqa: ANN001, ANN205
        return read_classification(spec.data, data_root).fingerprint

    def run(self, ctx: TaskContext, protocol: ZsClsProtocol) -> TaskOutput:
        logits, split, prompts, data = zero_shot_logits(ctx, protocol)
        n_cls = len(data.classes)
        bad = [k for k in protocol.topk if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1)]
        if bad or not protocol.topk:
            raise UserError(f"zs-cls protocol topk must list whole numbers >= 1, not {protocol.topk!r}")
        ks = tuple(k for k in protocol.topk if k <= n_cls)
        acc = topk_accuracy(logits, split.labels, ks)
        pred = argmax_low(logits)
        metrics = {f"top{k}": v for k, v in acc.items()}
        metrics["mean_per_class_recall"] = mean_per_class_recall(pred, split.labels, n_cls)
        recalls = per_class_recall(pred, split.labels, n_cls)
        per_class = {prompts.classnames[c]: v for c, v in recalls.items()}
        if len(set(prompts.classnames)) != n_cls:  # duplicate display names (ImageNet has two)
            per_class = {f"{prompts.classnames[c]} ({data.classes[c]})": v for c, v in recalls.items()}
        rec = {
            **asdict(protocol),
            # the geometry the images went through: the checkpoint's, or the profile's resize
            "preprocess_applied": {
                **ctx.model.preprocess.to_dict(),
                **({"resize": protocol.resize} if protocol.resize else {}),
            },
            **prompts.record(),
            "num_classes": n_cls,
            "num_images": len(split),
            "split": split.name,
            "features": "embed",
            "similarity": "cosine",
            "ties": "lower class index",
        }
        notes = [] if len(ks) == len(protocol.topk) else [f"top-k over {n_cls} classes: k={list(ks)}"]
        groups = duplicate_prompt_classes(prompts.texts(), n_cls)
        rec["duplicate_classnames"] = [[data.classes[c] for c in g] for g in groups]
        notes += [_duplicate_note(g, data.classes, prompts.classnames) for g in groups]
        return TaskOutput(metrics, rec, data.fingerprint, per_class=per_class, notes=notes)


def duplicate_prompt_classes(texts: list[str], n_cls: int) -> list[list[int]]:
    """Groups (class indices, ascending) whose prompts are all the same text: identical text
    embeddings, so every image ties between them and the lower index wins."""
    per = len(texts) // n_cls if n_cls else 0
    by_prompts: dict[tuple[str, ...], list[int]] = {}
    for c in range(n_cls):
        by_prompts.setdefault(tuple(texts[c * per : (c + 1) * per]), []).append(c)
    return [g for g in by_prompts.values() if len(g) > 1]


def _duplicate_note(group: list[int], classes: list[str], names: list[str]) -> str:
    folders = [classes[c] for c in group]
    listed = ", ".join(folders[:-1]) + " and " + folders[-1]
    shown = sorted({names[c] for c in group})
    name = f"the name {shown[0]!r}" if len(shown) == 1 else "the prompts of " + " / ".join(map(repr, shown))
    later = "the later one is" if len(group) == 2 else "the later ones are"
    return (
        f"classes {listed} share {name}: identical prompts, {later} never predicted "
        "(ties go to the lower index)"
    )
