"""The vendored SILC training stack (secondary to evaluation, which never imports it).

`train_from_config(path, resume, overrides, progress)` is the one entry point (`silc-bench
train`): read and check the YAML config with the command line's overrides, train (single
process, or one per device under `torchrun`), checkpoint, export a bundle the evaluation
loader reads back, and draw the training curves.

The names below load on first use, so that `train.plot` (`silc-bench train-plot`) and
`train.overrides` (a bad `--set`, refused at once) do not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from silc_bench.train.loop import TrainResult, train
    from silc_bench.train.overrides import Overrides

__all__ = ["Overrides", "TrainResult", "train", "train_from_config"]


def __getattr__(name: str) -> Any:
    if name in ("TrainResult", "train"):
        from silc_bench.train import loop

        return getattr(loop, name)
    if name == "Overrides":
        from silc_bench.train.overrides import Overrides

        return Overrides
    raise AttributeError(f"module 'silc_bench.train' has no attribute {name!r}")


def train_from_config(
    path: str | Path,
    resume: str | Path | None = None,
    overrides: Overrides | None = None,
    progress: bool = False,
) -> TrainResult:
    from silc_bench.train.config import load_config
    from silc_bench.train.loop import train
    from silc_bench.train.overrides import Overrides

    overrides = overrides or Overrides()
    cfg = load_config(Path(path), overrides.mapping())
    return train(cfg, Path(path), Path(resume) if resume else None, overrides, progress)
