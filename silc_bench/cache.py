"""The content-keyed on-disk feature cache.

An entry is a safetensors file of named numpy arrays, addressed by the sha256 of its key
parts (checkpoint sha256, dataset fingerprint, split, preprocessing, precision, feature
kind, ...). Because every part is content, a re-exported checkpoint or a changed
dataset can never be served stale features. Writes are atomic; an entry that fails to
load is treated as absent and recomputed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from silc_bench.hashing import canonical_json, hash_obj

CACHE_VERSION = 1


def cache_root() -> Path:
    return Path(os.environ.get("SILC_BENCH_CACHE", Path.home() / ".cache" / "silc-bench"))


class FeatureCache:
    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.root = Path(root) if root else cache_root() / "features"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, parts: dict[str, Any]) -> Path:
        key = hash_obj({"cache_version": CACHE_VERSION, "kind": kind, **parts})
        return self.root / kind / key[:2] / f"{key}.safetensors"

    def load(self, kind: str, parts: dict[str, Any]) -> dict[str, np.ndarray] | None:
        if not self.enabled:
            return None
        p = self.path(kind, parts)
        if not p.is_file():
            return None
        try:
            return load_file(str(p))
        except Exception:  # corrupt entry: recompute rather than fail
            return None

    def save(self, kind: str, parts: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if not self.enabled:
            return
        p = self.path(kind, parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        save_file(arrays, str(tmp), metadata={"key": canonical_json(parts)})
        os.replace(tmp, p)

    def get_or_compute(
        self,
        kind: str,
        parts: dict[str, Any],
        compute: Callable[[], dict[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        hit = self.load(kind, parts)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        arrays = compute()
        self.save(kind, parts, arrays)
        return arrays
