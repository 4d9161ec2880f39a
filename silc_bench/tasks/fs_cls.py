"""Few-shot linear probe: big_vision's closed-form ridge regression (docs/protocols.md).

Features are `pre_logits` from the same cached pass as zs-cls (checkpoint preprocessing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from silc_bench.core.errors import UserError
from silc_bench.data.classification import read_classification
from silc_bench.features.extract import image_features
from silc_bench.metrics.fewshot import fewshot_accuracy
from silc_bench.tasks.base import PLUGINS, TaskContext, TaskOutput, TaskPlugin


@dataclass
class FsClsProtocol:
    shots: list[int] = field(default_factory=lambda: [1, 5, 10, 25])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    l2_reg: float = 1024.0
    features: str = "pre_logits"
    resize: str | None = None  # override the checkpoint's resize mode (big_vision profile: squash_crop)
    differences: list[str] = field(default_factory=list)  # from the reference, recorded as they are


@PLUGINS.register("fs-cls")
class FewShotClassification(TaskPlugin):
    protocol_cls = FsClsProtocol
    headline = ("1shot_top1", "5shot_top1", "10shot_top1", "25shot_top1")

    @staticmethod
    def fingerprint(spec, protocol, data_root):  # noqa: ANN001, ANN205
        return read_classification(spec.data, data_root).fingerprint

    def run(self, ctx: TaskContext, protocol: FsClsProtocol) -> TaskOutput:
        data = read_classification(ctx.spec.data, ctx.data_root)
        model = ctx.model
        if protocol.resize:  # the profile's geometry, the checkpoint's normalisation
            from dataclasses import replace

            from silc_bench.models.preprocess import Preprocess

            geometry = {**model.preprocess.to_dict(), "resize": protocol.resize}
            pp = Preprocess.from_dict(geometry, "fs-cls protocol")
            model = replace(model, preprocess=pp)
        train = data.splits["train"]
        test = data.splits["eval"].head(ctx.limit)
        name = ctx.spec.dataset
        tr = image_features(model, train, ctx.cache, ctx.opts, f"{name}/{train.name}")
        te = image_features(model, test, ctx.cache, ctx.opts, f"{name}/{test.name}")
        key = protocol.features
        per_class_counts = np.bincount(train.labels, minlength=len(data.classes))
        present = per_class_counts[per_class_counts > 0]
        least = int(present.min()) if len(present) else 0  # classes with none: noted below
        # A k-shot probe needs k images of every class: with fewer it would silently be a
        # smaller-shot probe under a larger name (ShapesWorld's 25-shot is its 10-shot).
        drawn = [k for k in protocol.shots if k <= least]
        skipped = [k for k in protocol.shots if k > least]
        if not drawn:
            raise UserError(
                f"fs-cls {name}: the smallest class in the training pool has {least} images, "
                f"fewer than every shot count ({', '.join(map(str, protocol.shots))})"
            )
        acc = fewshot_accuracy(
            tr[key],
            train.labels,
            te[key],
            test.labels,
            len(data.classes),
            tuple(drawn),
            tuple(protocol.seeds),
            protocol.l2_reg,
        )
        metrics: dict[str, float] = {}
        for k in drawn:
            metrics[f"{k}shot_top1"] = float(np.mean([acc[(s, k)] for s in protocol.seeds]))
        for k in drawn:
            for s in protocol.seeds:
                metrics[f"{k}shot_top1_seed{s}"] = acc[(s, k)]
        rec = {
            **asdict(protocol),
            "num_classes": len(data.classes),
            "num_train_pool": len(train),
            "num_images": len(test),
            "train_split": train.name,
            "split": test.name,
            "train_per_class": ctx.spec.data.get("train_per_class"),
            "min_train_per_class": least,
            "shots_drawn": drawn,
            "shots_left_out": skipped,
            "feature_dim": int(tr[key].shape[1]),
            "solver": "eigh float32 (big_vision fewshot_lsr)",
            "bias_constant": 100.0,
            "sample_order": "classes by sorted folder, files by sorted name",
            "preprocess": model.preprocess.to_dict(),
        }
        notes = []
        empty = int((per_class_counts == 0).sum())
        if empty:
            notes.append(f"{empty} classes have no training images: the probe never predicts them")
        if skipped:
            shots = ", ".join(f"{k}-shot" for k in skipped)
            notes.append(
                f"{shots} left out: the smallest class has {least} training images "
                f"(a larger probe would reuse the {drawn[-1]}-shot draw)"
            )
        return TaskOutput(metrics, rec, data.fingerprint, seeds=list(protocol.seeds), notes=notes)
