"""MMSeg's sliding-window inference, with windows batched.

The windows, the sum/count averaging and the upsampling are exactly those of mmseg 1.x
`EncoderDecoder.slide_inference`: a grid of `max(H - crop + stride - 1, 0) // stride + 1`
rows (and columns), the last window snapped to the border with no padding, each window's
logits bilinearly resized to the window (align_corners=False) and summed in place, then
divided by the per-pixel count. The difference is throughput: windows of every image in
the batch are stacked and encoded `window_batch` at a time, instead of one by one. Only
one (C, H, W) accumulator per image is held.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def window_boxes(
    h: int, w: int, crop: tuple[int, int], stride: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """(y1, y2, x1, x2) for every window, in mmseg's row-major order."""
    (hc, wc), (hs, ws) = crop, stride
    h_grids = max(h - hc + hs - 1, 0) // hs + 1
    w_grids = max(w - wc + ws - 1, 0) // ws + 1
    boxes = []
    for hi in range(h_grids):
        for wi in range(w_grids):
            y1, x1 = hi * hs, wi * ws
            y2, x2 = min(y1 + hc, h), min(x1 + wc, w)
            y1, x1 = max(y2 - hc, 0), max(x2 - wc, 0)
            boxes.append((y1, y2, x1, x2))
    return boxes


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def sliding_window_logits(
    images: torch.Tensor,
    encode: Callable[[torch.Tensor], torch.Tensor],
    crop: int | tuple[int, int],
    stride: int | tuple[int, int],
    num_classes: int,
    window_batch: int | None = None,
) -> torch.Tensor:
    """(B, 3, H, W) images → (B, C, H, W) averaged window logits.

    `encode` maps (N, 3, h, w) windows to (N, C, h', w') logits; they are resized to the
    window size when h' × w' differs. `window_batch` bounds how many windows go through one
    `encode` call (None: all windows of the batch at once).
    """
    crop, stride = _pair(crop), _pair(stride)
    b, _, h, w = images.shape
    boxes = window_boxes(h, w, crop, stride)
    jobs = [(i, box) for i in range(b) for box in boxes]
    step = len(jobs) if not window_batch else max(1, int(window_batch))
    preds = images.new_zeros((b, num_classes, h, w))
    count = images.new_zeros((b, 1, h, w))
    for s in range(0, len(jobs), step):
        chunk = jobs[s : s + step]
        # windows differ in size only when the image is smaller than the crop; all windows of
        # one image then have the same (clipped) size, so stacking is always valid per size
        groups: dict[tuple[int, int], list[int]] = {}
        for j, (_, (y1, y2, x1, x2)) in enumerate(chunk):
            groups.setdefault((y2 - y1, x2 - x1), []).append(j)
        for (wh, ww), idx in groups.items():
            windows = torch.stack(
                [images[chunk[j][0], :, y1:y2, x1:x2] for j in idx for (y1, y2, x1, x2) in [chunk[j][1]]]
            )
            logits = encode(windows)
            if logits.shape[-2:] != (wh, ww):
                logits = F.interpolate(logits, size=(wh, ww), mode="bilinear", align_corners=False)
            for k, j in enumerate(idx):
                i, (y1, y2, x1, x2) = chunk[j]
                preds[i, :, y1:y2, x1:x2] += logits[k].to(preds.dtype)
                count[i, :, y1:y2, x1:x2] += 1
    return preds.div_(count)  # in place: the one (B, C, H, W) buffer is the result
