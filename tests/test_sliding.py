"""Sliding-window parity with mmseg's own `EncoderDecoder.slide_inference`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from silc_bench.segmentation import sliding_window_logits
from silc_bench.segmentation.sliding import window_boxes


def _encode(num_classes: int, patch: int = 4):
    """A deterministic position-sensitive 'model': conv features at 1/patch resolution."""
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(num_classes, 3, patch, patch, generator=g)

    def encode(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, stride=patch) + x.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)

    return encode


def _mmseg_reference(images, encode, crop, stride, num_classes):
    from mmseg.models.segmentors import EncoderDecoder

    import silc_bench.segmentation  # noqa: F401  (mmcv.ops stand-in)

    def encode_decode(x, metas):  # mmseg's decode head resizes to the window ('img_shape')
        out = encode(x)
        return F.interpolate(out, size=metas[0]["img_shape"], mode="bilinear", align_corners=False)

    fake = SimpleNamespace(
        test_cfg=SimpleNamespace(stride=(stride, stride), crop_size=(crop, crop)),
        out_channels=num_classes,
        encode_decode=encode_decode,
    )
    metas = [dict(img_shape=images.shape[2:], ori_shape=images.shape[2:]) for _ in range(len(images))]
    return EncoderDecoder.slide_inference(fake, images, metas)


@pytest.mark.parametrize("hw", [(20, 28), (32, 32), (45, 71), (64, 40), (33, 32)])
@pytest.mark.parametrize("window_batch", [None, 1, 3])
def test_matches_mmseg_slide_inference(hw, window_batch):
    torch.manual_seed(1)
    images = torch.randn(2, 3, *hw)
    encode = _encode(5)
    ours = sliding_window_logits(images, encode, crop=32, stride=12, num_classes=5, window_batch=window_batch)
    ref = _mmseg_reference(images, encode, 32, 12, 5)
    assert ours.shape == ref.shape == (2, 5, *hw)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_window_grid_snaps_to_border():
    assert window_boxes(20, 20, (32, 32), (16, 16)) == [(0, 20, 0, 20)]  # smaller than the crop
    assert window_boxes(32, 32, (32, 32), (16, 16)) == [(0, 32, 0, 32)]  # exactly the crop
    boxes = window_boxes(50, 32, (32, 32), (16, 16))  # not a multiple of the stride
    assert boxes == [(0, 32, 0, 32), (16, 48, 0, 32), (18, 50, 0, 32)]
