"""The ShapesWorld comparison: SILC vs CLIP, teacher vs student, on every ShapesWorld task.

Runs the suite's own tasks (results go to `--out`, default reports/shapes-results, which
is committed so `silc-bench table shapes` rebuilds the report from it) and adds the
reference points that make the numbers readable: chance for classification and
retrieval, and for segmentation a uniform random prediction and the best constant
prediction (every pixel one class), which a background threshold alone could match.
A second table scores every dense mode on the validation world (`shapes-seg-val`, seed
1): the shipped models' `dense_mode` is the best one there, so the seed-0 test sets never
choose a setting. Writes reports/shapes.md.

    python -m silc_bench.bench.shapes [--models silc-tiny,silc-tiny:student,clip-tiny,pacl-tiny]

The table itself is built by `silc_bench.results.tables.shapes`, the same code as `table shapes`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from silc_bench.api import EvalOptions, LazyModel, evaluate
from silc_bench.core.paths import REPO_ROOT
from silc_bench.models.dense import MODES
from silc_bench.results.audit import load_results
from silc_bench.results.tables.shapes import FINDINGS, TASKS, markdown


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="silc-tiny,silc-tiny:student,clip-tiny,pacl-tiny")
    ap.add_argument(
        "--out", default="reports/shapes-results", help="results folder (committed: table shapes reads it)"
    )
    ap.add_argument("--report", default=str(REPO_ROOT / "reports" / "shapes.md"))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--notes", help="a markdown file of findings to append (hand-written analysis)")
    ap.add_argument("--dense-modes", default=",".join(MODES), help="modes scored on shapes-seg-val")
    args = ap.parse_args()
    opts = EvalOptions(out=Path(args.out), device="cpu", workers=2, force=args.force, progress=False)
    refs = [r for r in args.models.split(",") if r]
    for ref in refs:
        model = LazyModel(ref, opts)
        for task, ds, _ in TASKS:
            if ref.startswith("pacl") and task != "zs-seg":
                continue  # PACL's embedder is a segmentation head only
            evaluate(model, task, ds, opts)
    for ref in refs:
        if ref.startswith("pacl"):
            continue
        for mode in [m for m in args.dense_modes.split(",") if m]:
            o = EvalOptions(**{**opts.__dict__, "task_options": {"dense_mode": mode}})
            evaluate(LazyModel(ref, o), "zs-seg", "shapes-seg-val", o)
    results, _ = load_results(Path(args.out))
    text = markdown(results, Path(args.notes) if args.notes else FINDINGS)
    Path(args.report).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
