"""`silc-bench check`: audit result files, and compare them with the registry's expected numbers."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from silc_bench.cli.flags import add_device, add_list
from silc_bench.core import paths
from silc_bench.core.errors import UserError


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    ck = sub.add_parser("check", parents=[common], help="check result files (protocol audit)")
    ck.add_argument(
        "results", nargs="?", default=None, help="a results folder or file (results/ if not given)"
    )
    ck.add_argument(
        "--results", dest="results_opt", default=None, metavar="DIR", help="the same, as an option"
    )
    ck.add_argument(
        "--zero-shot-only",
        action="store_true",
        help="fail if any result used refinement or label-tuned constants",
    )
    ck.add_argument(
        "--regression",
        action="store_true",
        help="compare every result with its model's `expected` numbers in checkpoints.yaml",
    )
    ck.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="allowed |result - expected|, in points, where the registry names no `tolerance:`",
    )
    ck.add_argument(
        "--tolerance-se",
        type=float,
        default=None,
        metavar="K",
        help="allow K standard errors instead (binomial for accuracies and recalls, the bootstrap's "
        "for mIoU); a metric with none keeps the fixed tolerance, and its row says so",
    )
    add_list(ck, "--models", help="only these registry entries (commas or repeats); a missing result fails")
    ck.add_argument("--run", action="store_true", help="first evaluate every expected key that has no result")
    ck.add_argument(
        "--data-root",
        default=paths.data_root(),
        help="for --run: folder holding the datasets (generated ShapesWorld sets need none)",
    )
    ck.add_argument("--quiet", action="store_true", help="no progress bars (--run)")
    add_device(ck, "for --run: ")


def run(a: argparse.Namespace) -> int:
    from silc_bench.results.audit import load_results, zero_shot_problems
    from silc_bench.results.regression import compare, markdown

    where = Path(a.results_opt or a.results or "results")
    if not (math.isfinite(a.tolerance) and a.tolerance >= 0):
        raise UserError(f"--tolerance must be a finite number of points >= 0, not {a.tolerance}")
    if a.tolerance_se is not None and not (math.isfinite(a.tolerance_se) and a.tolerance_se >= 0):
        raise UserError(
            f"--tolerance-se must be a finite number of standard errors >= 0, not {a.tolerance_se}"
        )
    if (a.run or a.models or a.tolerance_se is not None) and not a.regression:
        raise UserError("--run, --models and --tolerance-se go with --regression")
    if a.run:
        if not a.models:
            raise UserError(
                "--run needs --models NAME [NAME ...]: the entries whose expected numbers to measure"
            )
        run_missing(a.models, where, Path(a.data_root), progress=not a.quiet, device=a.device)
    if a.models and not (where.exists() and any(where.rglob("*.json"))):
        results, unreadable = [], []  # nothing measured yet: every expected number is missing
    else:
        results, unreadable = load_results(where)
    if unreadable:  # every bad file is named, one line each
        for why in unreadable:
            print(f"silc-bench: error: {why}", file=sys.stderr)
        return 2
    problems = zero_shot_problems(results) if a.zero_shot_only else []
    rows = []
    if a.regression:
        rows = compare(results, a.tolerance, a.models, a.tolerance_se)
        print(markdown(rows))
        problems += [r.problem for r in rows if not r.ok]
        if not rows:
            problems.append(f"no result under {where} has expected numbers in checkpoints.yaml")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"silc-bench check: {len(problems)} problems in {len(results)} results", file=sys.stderr)
        return 1
    notes = [" (all raw zero-shot)" if a.zero_shot_only else ""]
    if a.regression and a.tolerance_se is not None:
        fixed = sum(r.basis.startswith("fixed") for r in rows)
        notes.append(f"; {len(rows)} metrics within {a.tolerance_se:g} standard errors of expected")
        if fixed:
            notes.append(f" ({fixed} with no standard error, within the fixed tolerance instead)")
    elif a.regression:
        tol = {r.tolerance for r in rows}
        within = f"±{a.tolerance:g}" if tol == {a.tolerance} else "their tolerance"
        notes.append(f"; {len(rows)} metrics within {within} of expected")
    print(f"silc-bench check: {len(results)} results OK" + "".join(notes))
    return 0


def run_missing(
    names: list[str], results_dir: Path, data_root: Path, progress: bool, device: str = "cpu"
) -> int:
    """Evaluate every expected key of `names` that has no result yet; the number run."""
    from silc_bench.api import EvalOptions, LazyModel, evaluate
    from silc_bench.results.audit import load_results
    from silc_bench.results.regression import compare

    have = compare(
        load_results(results_dir)[0] if results_dir.is_dir() and any(results_dir.rglob("*.json")) else [],
        1.0,
        names,
    )
    todo = list(dict.fromkeys((row.model, row.key) for row in have if row.got is None))
    opts = EvalOptions(data_root=data_root, out=results_dir, device=device, workers=0, progress=progress)
    lazies: dict[str, LazyModel] = {}
    for ref, key in todo:
        task, _, dataset = key.partition("/")
        if "+" in dataset:
            raise UserError(
                f"{ref}: expected key {key!r} names a task option; --run evaluates registry defaults only"
            )
        dataset, _, profile = dataset.partition("@")
        o = EvalOptions(**{**opts.__dict__, "profile": profile or None})
        lazy = lazies.setdefault(ref, LazyModel(ref, o))
        print(f"silc-bench check: running {ref} {key}", file=sys.stderr)
        evaluate(lazy, task, dataset, o)
    return len(todo)
