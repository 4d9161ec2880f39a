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
        [--seed-runs runs]

`--seed-runs DIR` also measures the other training seeds of silc-tiny and clip-tiny
(`DIR/NAME-seedK/export/NAME-seedK.yaml`, as `silc-bench train ... --set seed=K --set
export.name=NAME-seedK --out DIR/NAME-seedK` writes them) on the seed-0 test sets, with
the shipped model's registered dense mode, for the report's mean ± std table. Their
weights are not shipped; their result files are committed with the others.

The table itself is built by `silc_bench.results.tables.shapes`, the same code as `table shapes`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import yaml

from silc_bench.api import EvalOptions, LazyModel, evaluate
from silc_bench.core.paths import REPO_ROOT
from silc_bench.models.dense import MODES
from silc_bench.results.audit import load_results
from silc_bench.results.tables.shapes import FINDINGS, SEED_FAMILIES, SEEDS, TASKS, markdown, seed_ref


def register_seeds(runs: Path) -> list[str]:
    """Put the seed models' exported entries on SILC_BENCH_CHECKPOINTS, each with its
    family's registered dense mode (chosen on the validation world by the shipped seed), and
    return the model names to measure. A missing seed is an error: a mean over fewer seeds
    than the report says would be wrong without saying so."""
    from silc_bench.config import load_models

    shipped = load_models()
    entries = {}
    for base in dict.fromkeys(f.partition(":")[0] for f in SEED_FAMILIES):
        for seed in SEEDS[1:]:
            name = seed_ref(base, seed)
            f = runs / name / "export" / f"{name}.yaml"
            if not f.is_file():
                raise SystemExit(f"bench.shapes: no exported model {f} (train seed {seed} of {base} first)")
            try:
                entry = dict(yaml.safe_load(f.read_text())["models"][name])
            except (yaml.YAMLError, KeyError, TypeError, ValueError) as e:
                raise SystemExit(
                    f"bench.shapes: {f} is not the entry `silc-bench train` writes ({e!r:.80})"
                ) from None
            entry["dense_mode"] = shipped[base].dense_mode
            entries[name] = entry
    refs = [seed_ref(family, seed) for family in SEED_FAMILIES for seed in SEEDS[1:]]
    reg = Path(tempfile.mkdtemp(prefix="silc-bench-seeds-")) / "seeds.yaml"
    reg.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    os.environ["SILC_BENCH_CHECKPOINTS"] = os.pathsep.join(
        p for p in (os.environ.get("SILC_BENCH_CHECKPOINTS", ""), str(reg)) if p
    )
    return refs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="silc-tiny,silc-tiny:student,clip-tiny,pacl-tiny")
    ap.add_argument(
        "--out", default="reports/shapes-results", help="results folder (committed: table shapes reads it)"
    )
    ap.add_argument("--report", default=str(REPO_ROOT / "reports" / "shapes.md"))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--notes", help="a markdown file of findings to append (hand-written analysis)")
    ap.add_argument("--seed-runs", type=Path, help="a folder of the other seeds' training runs")
    ap.add_argument("--dense-modes", default=",".join(MODES), help="modes scored on shapes-seg-val")
    args = ap.parse_args()
    opts = EvalOptions(out=Path(args.out), device="cpu", workers=2, force=args.force, progress=False)
    refs = [r for r in args.models.split(",") if r]
    seeds = register_seeds(args.seed_runs) if args.seed_runs else []
    for ref in refs + seeds:
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
