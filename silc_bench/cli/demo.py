"""`make demo`: the main job on the embedded default, with nothing downloaded.

The default is silc-tiny, trained by our own stack (configs/train/silc-tiny.yaml) and
shipped inside the package; the data is ShapesWorld, generated into the cache on first
use. The demo runs zero-shot segmentation and zero-shot classification, writes the result
files, and prints the table with the reference points that make the numbers readable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from silc_bench.cli.flags import add_results

DEMO_MODEL = "silc-tiny"
DEMO_RUNS = (("zs-seg", "shapes-seg"), ("zs-cls", "shapes-cls"))


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    d = sub.add_parser("demo", parents=[common], help="the main job on the embedded default (generated data)")
    add_results(d)
    d.add_argument("--model", default=DEMO_MODEL, help="the model (the default is shipped in the package)")
    d.add_argument("--quiet", action="store_true")


def run(a: argparse.Namespace) -> int:
    return run_demo(Path(a.results), progress=not a.quiet, model=a.model or DEMO_MODEL)


def run_demo(out: Path, progress: bool = True, model: str = DEMO_MODEL) -> int:
    from silc_bench.api import EvalOptions, LazyModel, evaluate
    from silc_bench.results.summary import markdown_table
    from silc_bench.segmentation.references import dataset_references

    # a stored result is reused only when its run key matches exactly, so a second demo is instant
    opts = EvalOptions(out=out, device="cpu", batch_size=64, workers=0, progress=progress)
    lazy = LazyModel(model, opts)
    results = []
    for task, dataset in DEMO_RUNS:
        outcome = evaluate(lazy, task, dataset, opts)
        print(f"{'reused' if outcome.skipped else 'wrote'} {outcome.path}", file=sys.stderr)
        results.append(outcome.result)
    print(markdown_table(results))
    ref = dataset_references("shapes-seg")
    print(
        f"\nshapes-seg reference points: uniform random mIoU {ref['uniform random']:.2f}, "
        f"best constant prediction mIoU {ref['best constant']:.2f}.\n"
        f"Next: silc-bench list models; silc-bench run --task zs-seg --model clip-tiny --dataset shapes-seg",
        file=sys.stderr,
    )
    return 0
