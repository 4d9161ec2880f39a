"""`silc-bench train`: the vendored SILC training stack (or CLIP, PACL) from a YAML config."""

from __future__ import annotations

import argparse


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    tr = sub.add_parser(
        "train", parents=[common], help="train SILC (or CLIP, PACL) from a YAML config (torchrun for DDP)"
    )
    tr.add_argument("--config", required=True, help="training config YAML (see configs/train/)")
    tr.add_argument("--resume", help="a checkpoint of the same config to continue from")


def run(a: argparse.Namespace) -> int:
    from silc_bench.train import train_from_config

    result = train_from_config(a.config, a.resume)
    if result.entry is not None:
        print(f"silc-bench train: {result.step} steps; export {', '.join(str(f) for f in result.files)}")
        print(f"silc-bench train: checkpoints.yaml entry {result.entry}")
    return 0
