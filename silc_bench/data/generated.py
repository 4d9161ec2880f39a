"""Datasets the suite generates itself (ShapesWorld) instead of reading from --data-root.

A task YAML marks them with `generated: shapesworld`; the data then lives in the cache
folder (`$SILC_BENCH_CACHE/datasets/`), generated on first use, and is read by the same
readers as a real dataset. `generated_seed` (default 0) draws another world: seed 1 is
the validation world the shipped models' settings are chosen on (`shapes-seg-val`), so
the seed-0 sets stay untouched test sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from silc_bench.core.errors import UserError

GENERATORS = ("shapesworld",)


def resolve_root(data_cfg: dict[str, Any], data_root: Path) -> tuple[dict[str, Any], Path]:
    """(the data config without `generated`, the root its paths are relative to)."""
    cfg = dict(data_cfg)
    gen = cfg.pop("generated", None)
    seed = cfg.pop("generated_seed", 0)
    if gen is None:
        return cfg, Path(data_root)
    if gen not in GENERATORS:
        raise UserError(f"unknown generated dataset {gen!r}; known: {', '.join(GENERATORS)}")
    from silc_bench.core.paths import cache_root
    from silc_bench.data.shapesworld import ensure

    if not isinstance(seed, int) or seed < 0:
        raise UserError(f"generated_seed must be a non-negative integer, not {seed!r}")
    return cfg, ensure(cache_root() / "datasets", seed)
