"""`silc-bench figure`: the qualitative zs-seg grid (the paper's Figures 1-4); models with no saved
predictions are run first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from silc_bench.cli.flags import add_list
from silc_bench.core import paths
from silc_bench.core.errors import UserError


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    fg = sub.add_parser("figure", parents=[common], help="qualitative zs-seg grid (the paper's Figures 1-4)")
    fg.add_argument("--task", default="zs-seg", choices=["zs-seg"])
    add_list(fg, "--models", required=True, help="one prediction column per model (commas or repeats)")
    fg.add_argument("--dataset", required=True, help="a zs-seg dataset (e.g. shapes-seg)")
    fg.add_argument("--n", type=int, default=6, help="images (rows), first in dataset order")
    fg.add_argument("--out", default="figures", help="folder that receives only the figure PNGs")
    fg.add_argument("--results", default="results", help="where predictions are saved or found")
    fg.add_argument("--data-root", default=paths.data_root())
    fg.add_argument("--confusions", action="store_true", help="class pairs model A confuses and B does not")


def run(a: argparse.Namespace) -> int:
    if a.n < 1:
        raise UserError("--n must be positive")
    models = [m for m in a.models if m]
    return run_figure(models, a.dataset, a.n, Path(a.out), Path(a.results), Path(a.data_root), a.confusions)


def ensure_predictions(models: list[str], dataset: str, results: Path, data_root: Path) -> dict[str, Path]:
    """model → its prediction folder, running the model with --save-predictions if absent."""
    from silc_bench.api import EvalOptions, execute, prepare

    opts = EvalOptions(
        data_root=data_root, out=results, device="cpu", workers=0, progress=False,
        task_options={"save_predictions": True},
    )  # fmt: skip
    plans = [prepare(model, "zs-seg", dataset, opts) for model in models]  # every model checked first
    dirs = {}
    for model, plan in zip(models, plans):
        outcome = execute(plan, opts)
        dirs[model] = outcome.path.with_suffix("") / "pred"
        if not dirs[model].is_dir():
            raise UserError(f"no predictions under {dirs[model]}")
    return dirs


def run_figure(
    models: list[str], dataset: str, n: int, out: Path, results: Path, data_root: Path, confusions: bool
) -> int:
    if len(models) < 1 or (confusions and len(models) != 2):
        raise UserError("--models takes one or more models (exactly two with --confusions)")
    from silc_bench.core.files import writable_dir
    from silc_bench.results.figures import confusion, confusion_pairs, confusions_table, grid, samples

    if not writable_dir(out):
        raise UserError(f"--out: cannot write figures into {out} (not a writable folder)")
    pred_dirs = ensure_predictions(models, dataset, results, data_root)
    path = grid(models, dataset, pred_dirs, data_root, n, out)
    print(f"wrote {path}", file=sys.stderr)
    if confusions:
        _, classes = samples(dataset, data_root, 0)
        mats = [confusion(dataset, pred_dirs[m], data_root) for m in models]
        print(confusions_table(models, confusion_pairs(mats[0], mats[1], classes)))
    return 0
