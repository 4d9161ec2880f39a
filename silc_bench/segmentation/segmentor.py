"""Our registered mmseg `BaseSegmentor`: batched sliding windows + a scoring rule.

mmseg's data preprocessor normalises (BGR→RGB, mean/std on 0–255), the sliding window
is `sliding_window_logits` (mmseg's algorithm, batched), the resize back to the original
size is BaseSegmentor's (bilinear, align_corners=False), and the class map comes from a
`ScoreRule`. Predictions go into `pred_sem_seg`, which mmseg's IoUMetric consumes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import MODELS

import silc_bench.segmentation  # noqa: F401  (the package __init__ installs the mmcv.ops stand-in first)
from silc_bench.segmentation.rules import ScoreRule
from silc_bench.segmentation.sliding import sliding_window_logits


@MODELS.register_module(name="SilcZeroShotSegmentor", force=True)
class ZeroShotSegmentor(BaseSegmentor):
    def __init__(
        self,
        encode: Callable[[torch.Tensor], torch.Tensor],
        rule: ScoreRule,
        num_queries: int,
        crop: int,
        stride: int,
        mean: list[float],
        std: list[float],
        window_batch: int | None = 8,
    ) -> None:
        super().__init__(
            data_preprocessor=dict(type="mmseg.SegDataPreProcessor", mean=mean, std=std, bgr_to_rgb=True)
        )
        self.encode = encode
        self.rule = rule
        self.num_queries = num_queries
        self.crop, self.stride = crop, stride
        self.window_batch = window_batch
        self.align_corners = False
        self.oom_fallbacks = 0

    def _slide(self, inputs: torch.Tensor) -> torch.Tensor:
        while True:
            try:
                return sliding_window_logits(
                    inputs, self.encode, self.crop, self.stride, self.num_queries, self.window_batch
                )
            except torch.OutOfMemoryError:
                if self.window_batch == 1:
                    raise
                self.window_batch = max(1, (self.window_batch or 8) // 2)
                self.oom_fallbacks += 1
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, data_samples: list | None = None) -> list:
        logits = self._slide(inputs)
        for i, sample in enumerate(data_samples):
            h, w = sample.metainfo["ori_shape"][:2]
            full = F.interpolate(
                logits[i : i + 1], size=(h, w), mode="bilinear", align_corners=self.align_corners
            )[0]
            pred = self.rule.predict(full)
            sample.set_data({"pred_sem_seg": PixelData(data=pred.unsqueeze(0))})
        return data_samples

    # BaseSegmentor's abstract interface; only inference is used.
    def extract_feat(self, inputs: torch.Tensor):  # noqa: ANN201
        raise NotImplementedError("zero-shot segmentor: inference only")

    def encode_decode(self, inputs: torch.Tensor, batch_data_samples: list) -> torch.Tensor:
        return self.encode(inputs)

    def loss(self, inputs, data_samples):  # noqa: ANN001, ANN201
        raise NotImplementedError("zero-shot segmentor: inference only")

    def _forward(self, inputs, data_samples=None):  # noqa: ANN001, ANN201
        return self._slide(inputs)
