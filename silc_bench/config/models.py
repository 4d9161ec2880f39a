"""Model specs: the entries of `checkpoints.yaml` and of every file in `SILC_BENCH_CHECKPOINTS`.

Each block of an entry has its own typed schema (config/schemas.py), checked on load with
the field's path in the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from silc_bench.config.files import build, read_yaml
from silc_bench.config.schemas import (
    ArchSchema,
    PaperRowSchema,
    PreprocessSchema,
    TokenizerSchema,
    VariantSchema,
    WeightsSchema,
)
from silc_bench.core.errors import UserError
from silc_bench.core.paths import checkpoint_files

DenseMode = Literal["patch-proj", "maskclip", "sclip", "clearclip", "naclip"]


@dataclass(frozen=True)
class ModelSpec:
    """One entry of checkpoints.yaml. Preprocessing lives with the checkpoint (timm's rule)."""

    name: str
    arch: dict[str, Any] = field(metadata={"schema": ArchSchema})
    backend: Literal["open_clip", "timm-tower", "tcl", "pacl"] = "open_clip"
    weights: dict[str, Any] = field(default_factory=dict, metadata={"schema": WeightsSchema})
    preprocess: dict[str, Any] = field(default_factory=dict, metadata={"schema": PreprocessSchema})
    tokenizer: dict[str, Any] = field(default_factory=dict, metadata={"schema": TokenizerSchema})
    dense_mode: DenseMode = "maskclip"
    variants: dict[str, dict[str, Any] | None] = field(
        default_factory=dict, metadata={"each": VariantSchema | None}
    )
    default_variant: str | None = None
    paper: dict[str, Any] = field(default_factory=dict)
    # {model, size} in the paper's tables
    paper_row: dict[str, str] = field(default_factory=dict, metadata={"schema": PaperRowSchema})
    expected: dict[str, Any] = field(default_factory=dict)
    tolerance: dict[str, Any] = field(default_factory=dict)  # keyed like expected; default ±1 point
    description: str = ""
    reproduce: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.default_variant is not None and self.default_variant not in self.variants:
            valid = ", ".join(self.variants) or "none"
            raise TypeError(f"default_variant {self.default_variant!r} is not one of its variants ({valid})")


def _numbers(value: Any, where: str, minimum: float | None = None) -> dict[str, dict[str, float]]:
    """`task/dataset: {metric: number}` with finite numbers (a typo must not pass a check)."""
    import math

    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a mapping of task/dataset keys to {{metric: number}}")
    for key, metrics in value.items():
        if not isinstance(metrics, dict):
            raise UserError(f"{where}: {key}: expected {{metric: number}}, found {metrics!r}")
        for metric, v in metrics.items():
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or (minimum is not None and v < minimum):
                bound = f" >= {minimum:g}" if minimum is not None else ""
                raise UserError(f"{where}: {key}: {metric} must be a finite number{bound}, not {v!r}")
    return value


def _check_reference_numbers(entry: dict[str, Any], where: str) -> None:
    """expected, paper and tolerance (on the entry and on each variant) are well formed, and
    every tolerance names a metric that has an expected number."""
    variants = entry.get("variants") or {}
    scopes = [("", entry)] + [
        (f" variant {v!r}", e or {}) for v, e in variants.items() if isinstance(e, dict)
    ]
    base_expected = _numbers(entry.get("expected", {}), f"{where} expected")
    for label, scope in scopes:
        expected = _numbers(scope.get("expected", {}), f"{where}{label} expected")
        _numbers(scope.get("paper", {}), f"{where}{label} paper")
        tolerance = _numbers(scope.get("tolerance", {}), f"{where}{label} tolerance", minimum=0.0)
        for key, metrics in tolerance.items():
            known = {**base_expected.get(key, {}), **expected.get(key, {})}
            if not label:  # an entry-level tolerance may bound its variants' numbers
                for _, other in scopes[1:]:
                    known.update((other.get("expected") or {}).get(key, {}))
            stray = sorted(set(metrics) - set(known))
            if stray:
                raise UserError(f"{where}{label} tolerance: {key} {stray} has no expected number to bound")


def load_models() -> dict[str, ModelSpec]:
    """Every registry file in order. A later file may redefine a model only with
    `override: true` in its entry: a silent redefinition would change every number."""
    models: dict[str, ModelSpec] = {}
    origin: dict[str, Path] = {}
    for path in checkpoint_files():
        raw = read_yaml(path).get("models", {}) or {}
        if not isinstance(raw, dict):
            raise UserError(f"{path}: `models` must be a mapping of model names to entries")
        for name, entry in raw.items():
            if not isinstance(entry, dict):
                raise UserError(f"{path}: model {name!r} must be a mapping")
            entry = dict(entry)
            override = entry.pop("override", False)
            if name in origin and override is not True:
                raise UserError(
                    f"{path}: model {name!r} is already defined in {origin[name]}; "
                    f"add `override: true` to its entry to replace it on purpose"
                )
            origin[name] = path
            _check_reference_numbers(entry, f"{path}: model {name!r}")
            models[name] = build(ModelSpec, {"name": name, **entry}, f"{path}: model {name!r}")
    return models
