"""The ShapesWorld comparison: SILC vs CLIP, teacher vs student, on every ShapesWorld task.

Runs the suite's own tasks (results go to `--out`, default results/shapes) and adds the
reference points that make the numbers readable: chance for classification and
retrieval, and for segmentation a uniform random prediction and the best constant
prediction (every pixel one class), which a background threshold alone could match.
Writes reports/shapes.md.

    python -m silc_bench.bench.shapes [--models silc-tiny,silc-tiny:student,clip-tiny,pacl-tiny]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from silc_bench.api import EvalOptions, LazyModel, evaluate
from silc_bench.config import REPO_ROOT, load_task
from silc_bench.data.generated import resolve_root
from silc_bench.results import Result

TASKS = (
    ("zs-cls", "shapes-cls", "top1"),
    ("fs-cls", "shapes-cls", "10shot_top1"),
    ("retrieval", "shapes-retrieval", "i2t_recall@1"),
    ("retrieval", "shapes-retrieval", "t2i_recall@1"),
    ("zs-seg", "shapes-seg", "mIoU"),
)


def _miou(inter: np.ndarray, union: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * float(np.nanmean(np.where(union > 0, inter / union, np.nan)))


def seg_baselines(num_classes: int = 7, seed: int = 0) -> dict[str, float]:
    """mIoU of a uniform random prediction and of the best constant prediction on shapes-seg."""
    spec = load_task("zs-seg", "shapes-seg")
    _, root = resolve_root(spec.data, Path("."))
    labels = [np.array(Image.open(p)) for p in sorted((root / "seg" / "annotations").glob("*.png"))]
    rng = np.random.default_rng(seed)
    inter = np.zeros(num_classes)
    union = np.zeros(num_classes)
    const = {c: (np.zeros(num_classes), np.zeros(num_classes)) for c in range(num_classes)}
    for gt in labels:
        valid = gt != 255
        pred = rng.integers(0, num_classes, gt.shape)
        for k in range(num_classes):
            a, b = (pred == k) & valid, (gt == k) & valid
            inter[k] += (a & b).sum()
            union[k] += (a | b).sum()
            for c, (ci, cu) in const.items():
                a = valid if k == c else np.zeros_like(valid)
                ci[k] += (a & b).sum()
                cu[k] += (a | b).sum()
    best = max(_miou(ci, cu) for ci, cu in const.values())
    return {"uniform random": _miou(inter, union), "best constant": best}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="silc-tiny,silc-tiny:student,clip-tiny,pacl-tiny")
    ap.add_argument("--out", default="results/shapes")
    ap.add_argument("--report", default=str(REPO_ROOT / "reports" / "shapes.md"))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--notes", help="a markdown file of findings to append (hand-written analysis)")
    ap.add_argument(
        "--dense-modes",
        default="maskclip,patch-proj,sclip",
        help="extra zs-seg rows per model, one per dense mode (exploration, not defaults)",
    )
    args = ap.parse_args()
    opts = EvalOptions(out=Path(args.out), device="cpu", workers=2, force=args.force, progress=False)
    table: dict[str, dict[str, str]] = {}
    chance: dict[str, float] = {}
    for ref in args.models.split(","):
        model = LazyModel(ref, opts)
        row = table.setdefault(ref, {})
        for task, ds, metric in TASKS:
            if ref.startswith("pacl") and task != "zs-seg":
                row[f"{task}/{metric}"] = "–"
                continue
            r: Result = evaluate(model, task, ds, opts).result
            row[f"{task}/{metric}"] = f"{r.metrics[metric]:.1f}"
            p = r.protocol
            n = p.get("num_images") if task == "retrieval" else p.get("num_classes")
            chance[f"{task}/{metric}"] = 100.0 / n
    seg_rows = []
    for ref in args.models.split(","):
        if ref.startswith("pacl"):
            continue
        for mode in [m for m in args.dense_modes.split(",") if m]:
            o = EvalOptions(**{**opts.__dict__, "task_options": {"dense_mode": mode}})
            r = evaluate(LazyModel(ref, o), "zs-seg", "shapes-seg", o).result
            m = r.metrics
            seg_rows.append(f"| {ref} | {mode} | {m['mIoU']:.1f} | {m['mAcc']:.1f} | {m['aAcc']:.1f} |")
    base = seg_baselines()
    cols = [f"{t}/{m}" for t, _, m in TASKS]
    lines = [
        "# ShapesWorld: SILC vs CLIP, teacher vs student",
        "",
        "Written by `python -m silc_bench.bench.shapes`. Every number is measured by the suite's own "
        "tasks on the generated ShapesWorld sets (seed 0); result files are in `results/shapes/`.",
        "",
        "| model | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for ref, row in table.items():
        lines.append(f"| {ref} | " + " | ".join(row.get(c, "") for c in cols) + " |")
    lines.append(
        "| chance | "
        + " | ".join(f"{chance[c]:.1f}" if c in chance and not c.startswith("zs-seg") else "" for c in cols)
        + " |"
    )
    lines += [
        "",
        f"Segmentation reference points (shapes-seg, 7 classes): uniform random mIoU "
        f"{base['uniform random']:.1f}, best constant prediction mIoU {base['best constant']:.1f}.",
        "",
    ]
    if seg_rows:
        lines += [
            "### shapes-seg by dense mode (tcl profile; exploration, not a tuned default)",
            "",
            "| model | dense mode | mIoU | mAcc | aAcc |",
            "|---|---|---|---|---|",
            *seg_rows,
            "",
        ]
    if args.notes:
        lines += [Path(args.notes).read_text().strip(), ""]
    Path(args.report).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
