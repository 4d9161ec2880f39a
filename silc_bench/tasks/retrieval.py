"""Image–text retrieval on Karpathy test splits (docs/protocols.md).

Equal to CLIP_benchmark's `zeroshot_retrieval.evaluate`, with its swapped names undone:
its `image_retrieval_recall@k` is our `t2i_recall@k`, its `text_retrieval` our `i2t`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from silc_bench.data.retrieval import read_karpathy
from silc_bench.features.extract import image_features, text_embeddings
from silc_bench.metrics.ranking import ranking_method, retrieval_recall
from silc_bench.models.text_rules import canonicalize
from silc_bench.tasks.base import PLUGINS, TaskContext, TaskOutput, TaskPlugin


@dataclass
class RetrievalProtocol:
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    lowercase_captions: bool = False  # SigLIP-style models
    canonicalize_text: bool = False


@PLUGINS.register("retrieval")
class Retrieval(TaskPlugin):
    protocol_cls = RetrievalProtocol
    headline = (
        "i2t_recall@1",
        "i2t_recall@5",
        "i2t_recall@10",
        "t2i_recall@1",
        "t2i_recall@5",
        "t2i_recall@10",
    )

    @staticmethod
    def fingerprint(spec, protocol, data_root):  # noqa: ANN001, ANN205
        return read_karpathy(spec.data, data_root).fingerprint

    def run(self, ctx: TaskContext, protocol: RetrievalProtocol) -> TaskOutput:
        full = read_karpathy(ctx.spec.data, ctx.data_root)
        data = full.head(ctx.limit)  # the fingerprint stays the full set's; the limit is recorded
        captions = data.captions
        if protocol.canonicalize_text:
            captions = [canonicalize(c) for c in captions]
        elif protocol.lowercase_captions:
            captions = [c.lower() for c in captions]
        feats = image_features(ctx.model, data.images, ctx.cache, ctx.opts, f"{ctx.spec.dataset}/images")
        img = torch.nn.functional.normalize(torch.from_numpy(feats["embed"]), dim=-1).numpy()
        txt = text_embeddings(ctx.model, captions, ctx.cache, ctx.opts, "captions")
        metrics = retrieval_recall(img, txt, data.text_to_image, tuple(protocol.ks))
        rec = {
            **asdict(protocol),
            "num_images": len(data.images),
            "num_captions": len(captions),
            "split": data.images.name,
            "similarity": "cosine",
            "ties": "lower index",
            "ranking": ranking_method(len(data.images), len(captions)),
        }
        return TaskOutput(metrics, rec, full.fingerprint)
