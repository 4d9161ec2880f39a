"""Regression checks: result files against the registry's `expected:` numbers.

`expected:` and its sibling `tolerance:` are keyed `task/dataset[@profile]` →
{metric: number}, on an entry or on one of its variants (the variant wins). The default
tolerance is ±1 point. With a tolerance in standard errors (`--tolerance-se K`), a metric
passes within K of its own standard error instead: binomial at the expected value over the
result's image (or caption) count for an accuracy or recall (the spread of the measurement
if the expected number were the truth, never 0 because this run hit 100%), the recorded
bootstrap's for mIoU; a metric with neither keeps the fixed tolerance, and its row says so.
With `models`, a missing result is a failure too; with `run`, the missing ones are first
evaluated with the registry's defaults. A result measured with `--limit`, on a partial
split, with other weights or with a task option never stands in for an expected number,
and every duplicate is compared (none hides another).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from silc_bench.config import ModelSpec, load_models, task_default_profile
from silc_bench.core.errors import UserError, did_you_mean
from silc_bench.results.key import ResultKey
from silc_bench.results.schema import Result


@dataclass
class Row:
    model: str  # as typed: NAME or NAME:VARIANT
    key: str
    metric: str
    expected: float
    got: float | None
    tolerance: float  # points
    path: str = ""
    basis: str = ""  # how `tolerance` was set, when not the fixed one: "2 × binomial se 0.5"

    @property
    def ok(self) -> bool:
        # NaN fails every comparison, so `> tolerance` alone would let it pass: ask for <=
        if self.got is None or not math.isfinite(self.got):
            return False
        return round(abs(self.got - self.expected), 6) <= self.tolerance  # 16.67 - 15.67 > 1.0 in floats

    @property
    def problem(self) -> str:
        what = f"{self.path or self.key}: {self.model} {self.metric}"
        if self.got is None:
            return f"{what}: no result (expected {self.expected:g})"
        if not math.isfinite(self.got):
            return f"{what} = {self.got}, expected {self.expected:g}: not a finite number"
        basis = f" ({self.basis})" if self.basis else ""
        return f"{what} = {self.got:.2f}, expected {self.expected:.2f} ± {self.tolerance:.4g}{basis}"


def _merged(spec: ModelSpec, variant: str | None, field: str) -> dict[str, dict[str, float]]:
    out = {k: dict(v) for k, v in getattr(spec, field).items()}
    for key, metrics in ((spec.variants.get(variant or "", {}) or {}).get(field, {}) or {}).items():
        out.setdefault(key, {}).update(metrics)
    return out


def expected_numbers(spec: ModelSpec | None, variant: str | None) -> dict[str, dict[str, float]]:
    """A registry entry's `expected`, a variant's own entries taking precedence."""
    return {} if spec is None else _merged(spec, variant, "expected")


def refs_of(name: str, spec: ModelSpec) -> list[tuple[str, str | None]]:
    """(model as typed, variant) for every variant of an entry that has expected numbers."""
    if not spec.variants:
        return [(name, None)] if spec.expected else []
    default = spec.default_variant or next(iter(spec.variants))
    refs = [(name if v == default else f"{name}:{v}", v) for v in spec.variants]
    return [(ref, v) for ref, v in refs if expected_numbers(spec, v)]


def compare(
    results: list[tuple[Path, Result]],
    tolerance: float,
    names: list[str] | None = None,
    tolerance_se: float | None = None,
) -> list[Row]:
    """One row per expected metric of every result that stands for its registry entry (all of
    them: a duplicate never hides another), or with `names`, of those entries, where a key
    with no result is a row with got=None. With `tolerance_se`, each metric that has a
    standard error is allowed that many of it instead of the fixed tolerance."""
    from silc_bench.results.audit import not_the_registry_run

    models = load_models()
    defaults: dict[str, str] = {}
    by_ref: dict[tuple[str, str], list[tuple[Path, Result]]] = {}
    for path, r in results:
        if not_the_registry_run(r, models.get(r.model.partition(":")[0])):
            continue
        default = defaults.setdefault(r.task, task_default_profile(r.task))
        # keyed by entry and variant: `silc-tiny` and `silc-tiny:teacher` are one model
        ident = (
            r.model.partition(":")[0],
            r.variant or "",
            ResultKey.from_result(r, default).reference_key(),
        )
        by_ref.setdefault(ident, []).append((path, r))
    wanted = []
    if names is None:
        for name, variant, key in by_ref:
            spec = models.get(name)
            if spec is not None and key in expected_numbers(spec, variant or None):
                ref = next((ref for ref, v in refs_of(name, spec) if (v or "") == variant), name)
                wanted.append((ref, spec, variant or None, key))
    else:
        for name in names:
            if name not in models:
                raise did_you_mean("model", name, models)
            if not refs_of(name, models[name]):
                raise UserError(f"model {name!r} has no `expected:` numbers in the registry to check")
            for ref, variant in refs_of(name, models[name]):
                wanted += [
                    (ref, models[name], variant, key) for key in expected_numbers(models[name], variant)
                ]
    rows = []
    for ref, spec, variant, key in wanted:
        tol = _merged(spec, variant, "tolerance").get(key, {})
        for path, r in by_ref.get((spec.name, variant or "", key)) or [(None, None)]:
            for metric, value in expected_numbers(spec, variant)[key].items():
                got = None if r is None or metric not in r.metrics else float(r.metrics[metric])
                points, basis = float(tol.get(metric, tolerance)), ""
                if tolerance_se is not None and r is not None:
                    points, basis = _in_standard_errors(r, metric, float(value), tolerance_se, points)
                rows.append(Row(ref, key, metric, float(value), got, points, str(path or ""), basis))
    return rows


def _in_standard_errors(r: Result, metric: str, expected: float, k: float, fixed: float) -> tuple[float, str]:
    """(tolerance in points, how it was set): k standard errors, or the fixed tolerance where
    the metric has none (mAcc, aAcc, mean per-class recall; mIoU run without --bootstrap)."""
    from silc_bench.results.tables.results import standard_error

    se = standard_error(r, metric, at=expected)
    if se is None:
        return fixed, "fixed: no standard error"
    return k * se[0], f"{k:g} × {se[1]} se {se[0]:.3g}"


def markdown(rows: list[Row]) -> str:
    table = []
    for r in rows:
        d = None if r.got is None else round(r.got - r.expected, 2) + 0.0  # + 0.0: no "-0.00"
        got, delta = ("–", "–") if r.got is None else (f"{r.got:.2f}", f"{d:+.2f}")
        status = "ok" if r.ok else "FAIL"
        tol = f"±{r.tolerance:.4g}" + (f" ({r.basis})" if r.basis else "")
        table.append([r.model, r.key, r.metric, f"{r.expected:.2f}", got, delta, tol, status])
    headers = ["model", "key", "metric", "expected", "got", "Δ", "tolerance", "status"]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)
