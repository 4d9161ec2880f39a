"""Where a registry entry's weight files are, and the sha256 each must have: no torch here,
so `list models` answers without importing the model code."""

from __future__ import annotations

from pathlib import Path

from silc_bench.config import ModelSpec
from silc_bench.core.errors import UserError
from silc_bench.core.paths import PACKAGE_DIR, weights_dir


def weight_files(spec: ModelSpec, override: Path | None) -> list[tuple[Path, str | None]]:
    """(path, expected sha256) for each file of the checkpoint."""
    if override is not None:
        return [(override, None)]
    w = spec.weights
    paths = w.get("path")
    if paths is None:
        return []
    paths = paths if isinstance(paths, list) else [paths]
    shas = w.get("sha256")
    if shas is None:
        shas = [None] * len(paths)
    shas = shas if isinstance(shas, list) else [shas]
    if len(shas) != len(paths):  # zip would drop the files without a sha256, silently
        raise UserError(
            f"model {spec.name!r}: weights.path names {len(paths)} file(s) but weights.sha256 "
            f"gives {len(shas)}; give one sha256 per file, in the same order"
        )
    return [resolve_path(str(p), sha) for p, sha in zip(paths, shas)]


def resolve_path(p: str, sha: str | None) -> tuple[Path, str | None]:
    if p.startswith("package:"):
        return PACKAGE_DIR / p.split(":", 1)[1], sha
    path = Path(p).expanduser()
    return (path if path.is_absolute() else weights_dir() / path), sha
