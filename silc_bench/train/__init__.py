"""The vendored SILC training stack (secondary to evaluation, which never imports it).

`train_from_config(path, resume)` is the one entry point (`silc-bench train`): read and
check the YAML config, train (single process, or one per device under `torchrun`),
checkpoint, and export a bundle the evaluation loader reads back.
"""

from __future__ import annotations

from pathlib import Path

from silc_bench.train.config import load_config
from silc_bench.train.loop import TrainResult, train

__all__ = ["TrainResult", "train", "train_from_config"]


def train_from_config(path: str | Path, resume: str | Path | None = None) -> TrainResult:
    cfg = load_config(Path(path))
    return train(cfg, Path(path), Path(resume) if resume else None)
