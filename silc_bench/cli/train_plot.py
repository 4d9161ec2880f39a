"""`silc-bench train-plot RUN`: a run's loss curves (each term, the learning rate, the
teacher's entropy) as a PNG, from its train_log.jsonl; also written at the end of training."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    tp = sub.add_parser("train-plot", parents=[common], help="draw a training run's loss curves as a PNG")
    tp.add_argument("run", metavar="RUN", help="a training run's folder (its out_dir) or its train_log.jsonl")
    tp.add_argument("--out", metavar="PNG", help="where to write the figure (default: RUN/train_curves.png)")


def run(a: argparse.Namespace) -> int:
    from silc_bench.core.errors import UserError
    from silc_bench.train.plot import plot_curves

    out = Path(a.out) if a.out else None
    if out is not None and out.suffix.lower() != ".png":
        raise UserError(f"--out {a.out}: the figure is a PNG; give a path ending in .png")
    print(plot_curves(Path(a.run), out))
    return 0
