"""`silc-bench train`: the vendored SILC training stack (or CLIP, PACL) from a YAML config.

`--steps`, `--set KEY=VALUE` and `--out` change the config for a quick trial without a copy
of the file; the run's saved config (and the export's `reproduce` line) records them.
"""

from __future__ import annotations

import argparse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, found {value}")
    return value


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    tr = sub.add_parser(
        "train", parents=[common], help="train SILC (or CLIP, PACL) from a YAML config (torchrun for DDP)"
    )
    tr.add_argument("--config", required=True, help="training config YAML (see configs/train/)")
    tr.add_argument(
        "--resume",
        help="a checkpoint of the same config to continue from; with a larger --steps, the last "
        "checkpoint of a finished run is extended",
    )
    tr.add_argument("--steps", type=_positive, metavar="N", help="optimizer steps (optim.steps) for this run")
    tr.add_argument(
        "--set",
        dest="sets",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, dotted for nested ones (objective.head.out_dim=256); the value "
        "is YAML (1e-3, true, [0.7, 1.0]); repeat for several",
    )
    tr.add_argument("--out", metavar="DIR", help="the run's folder (out_dir)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar, no lines on stdout")


def run(a: argparse.Namespace) -> int:
    from silc_bench.train import Overrides, train_from_config

    overrides = Overrides(tuple(a.sets or ()), a.steps, a.out)
    overrides.mapping()  # a bad --set is refused before torch or any data is touched
    result = train_from_config(a.config, a.resume, overrides, progress=not a.quiet)
    if a.quiet:
        return 0
    trained = len(result.history)
    rate = f" ({trained / result.seconds:.2f} step/s)" if result.seconds > 0 else ""
    print(f"silc-bench train: {result.step} steps; {trained} trained in {result.seconds:.1f} s{rate}")
    if result.entry is not None:
        print(f"silc-bench train: export {', '.join(str(f) for f in result.files)}")
        print(f"silc-bench train: checkpoints.yaml entry {result.entry}")
    if result.curves is not None:
        print(f"silc-bench train: curves {result.curves} (silc-bench train-plot redraws them)")
    return 0
