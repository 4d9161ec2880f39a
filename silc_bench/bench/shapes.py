"""The ShapesWorld comparison: SILC vs CLIP, teacher vs student, on every ShapesWorld task.

Runs the suite's own tasks (results go to `--out`, default results/shapes) and adds the
reference points that make the numbers readable: chance for classification and
retrieval, and for segmentation a uniform random prediction and the best constant
prediction (every pixel one class), which a background threshold alone could match.
A second table scores every dense mode on the validation world (`shapes-seg-val`, seed
1): the shipped models' `dense_mode` is the best one there, so the seed-0 test sets never
choose a setting. Writes reports/shapes.md.

    python -m silc_bench.bench.shapes [--models silc-tiny,silc-tiny:student,clip-tiny,pacl-tiny]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from silc_bench.api import EvalOptions, LazyModel, evaluate
from silc_bench.config import REPO_ROOT
from silc_bench.results import Result
from silc_bench.segmentation.dense import MODES
from silc_bench.segmentation.references import dataset_references

TASKS = (
    ("zs-cls", "shapes-cls", "top1"),
    ("fs-cls", "shapes-cls", "10shot_top1"),
    ("retrieval", "shapes-retrieval", "i2t_recall@1"),
    ("retrieval", "shapes-retrieval", "t2i_recall@1"),
    ("zs-seg", "shapes-seg", "mIoU"),
    ("zs-seg", "shapes-seg-shape", "mIoU"),
)
SEG_SETS = ("shapes-seg", "shapes-seg-shape")


def _col(task: str, ds: str, metric: str) -> str:
    return f"{task}/{ds}/{metric}" if task == "zs-seg" else f"{task}/{metric}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="silc-tiny,silc-tiny:student,clip-tiny,pacl-tiny")
    ap.add_argument("--out", default="results/shapes")
    ap.add_argument("--report", default=str(REPO_ROOT / "reports" / "shapes.md"))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--notes", help="a markdown file of findings to append (hand-written analysis)")
    ap.add_argument("--dense-modes", default=",".join(MODES), help="modes scored on shapes-seg-val")
    args = ap.parse_args()
    opts = EvalOptions(out=Path(args.out), device="cpu", workers=2, force=args.force, progress=False)
    refs = [r for r in args.models.split(",") if r]
    table: dict[str, dict[str, str]] = {}
    chance: dict[str, float] = {}
    for ref in refs:
        model = LazyModel(ref, opts)
        row = table.setdefault(ref, {})
        for task, ds, metric in TASKS:
            col = _col(task, ds, metric)
            if ref.startswith("pacl") and task != "zs-seg":
                row[col] = "–"  # PACL's embedder is a segmentation head only
                continue
            r: Result = evaluate(model, task, ds, opts).result
            row[col] = f"{r.metrics[metric]:.1f}"
            if task != "zs-seg":
                n = r.protocol["num_images"] if task == "retrieval" else r.protocol["num_classes"]
                chance[col] = 100.0 / n
    val_rows = []
    for ref in refs:
        if ref.startswith("pacl"):
            continue
        cells = []
        for mode in [m for m in args.dense_modes.split(",") if m]:
            o = EvalOptions(**{**opts.__dict__, "task_options": {"dense_mode": mode}})
            cells.append(evaluate(LazyModel(ref, o), "zs-seg", "shapes-seg-val", o).result.metrics["mIoU"])
        val_rows.append(f"| {ref} | " + " | ".join(f"{v:.1f}" for v in cells) + " |")
    cols = [_col(*t) for t in TASKS]
    lines = [
        "# ShapesWorld: SILC vs CLIP, teacher vs student",
        "",
        "Written by `python -m silc_bench.bench.shapes`. Every number is measured by the suite's own "
        "tasks on the generated ShapesWorld sets (seed 0), with each model's registered defaults; "
        "result files are in `results/shapes/`.",
        "",
        "| model | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for ref, row in table.items():
        lines.append(f"| {ref} | " + " | ".join(row.get(c, "") for c in cols) + " |")
    lines.append("| chance | " + " | ".join(f"{chance[c]:.1f}" if c in chance else "" for c in cols) + " |")
    lines.append("")
    for ds in SEG_SETS:
        ref = dataset_references(ds)
        lines.append(
            f"- {ds} reference points: uniform random mIoU {ref['uniform random']:.1f}, "
            f"best constant prediction mIoU {ref['best constant']:.1f}."
        )
    if val_rows:
        modes = [m for m in args.dense_modes.split(",") if m]
        lines += [
            "",
            "### Choosing the dense mode on the validation world (shapes-seg-val, seed 1)",
            "",
            "| model | " + " | ".join(modes) + " |",
            "|---|" + "---|" * len(modes),
            *val_rows,
        ]
    lines.append("")
    if args.notes:
        lines += [Path(args.notes).read_text().strip(), ""]
    Path(args.report).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
