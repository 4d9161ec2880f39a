"""Few-shot linear probe: big_vision's closed-form ridge regression (docs/protocols.md).

Features are `pre_logits` from the same cached pass as zs-cls (checkpoint preprocessing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

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
        acc = fewshot_accuracy(
            tr[key],
            train.labels,
            te[key],
            test.labels,
            len(data.classes),
            tuple(protocol.shots),
            tuple(protocol.seeds),
            protocol.l2_reg,
        )
        metrics: dict[str, float] = {}
        for k in protocol.shots:
            metrics[f"{k}shot_top1"] = float(np.mean([acc[(s, k)] for s in protocol.seeds]))
        for k in protocol.shots:
            for s in protocol.seeds:
                metrics[f"{k}shot_top1_seed{s}"] = acc[(s, k)]
        per_class_counts = np.bincount(train.labels, minlength=len(data.classes))
        rec = {
            **asdict(protocol),
            "num_classes": len(data.classes),
            "num_train_pool": len(train),
            "num_images": len(test),
            "train_split": train.name,
            "split": test.name,
            "train_per_class": ctx.spec.data.get("train_per_class"),
            "min_train_per_class": int(per_class_counts.min()),
            "feature_dim": int(tr[key].shape[1]),
            "solver": "eigh float32 (big_vision fewshot_lsr)",
            "bias_constant": 100.0,
            "sample_order": "classes by sorted folder, files by sorted name",
            "preprocess": model.preprocess.to_dict(),
        }
        notes = []
        if per_class_counts.min() < max(protocol.shots):
            notes.append(
                f"some classes have fewer than {max(protocol.shots)} training samples "
                f"(min {int(per_class_counts.min())}); they contribute all they have"
            )
        return TaskOutput(metrics, rec, data.fingerprint, seeds=list(protocol.seeds), notes=notes)
