"""Zero-shot segmentation on MMSegmentation: sliding window, segmentor, the test loop
(dense features come from the model backends, silc_bench/models/).

Importing this package makes mmseg importable on mmcv-lite (see `mmcv_ops`).
"""

from silc_bench.segmentation.mmcv_ops import install as _install_mmcv_ops

_install_mmcv_ops()

from silc_bench.segmentation.sliding import sliding_window_logits  # noqa: E402

__all__ = ["sliding_window_logits"]
