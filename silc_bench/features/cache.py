"""The content-keyed on-disk feature cache, verified on every read.

An entry is a safetensors file of named numpy arrays, addressed by the sha256 of its key
parts (checkpoint sha256, dataset fingerprint, split, preprocessing, precision, feature
kind, ...). Because every part is content, a re-exported checkpoint or a changed
dataset can never be served stale features.

A file on disk can still be damaged, truncated or swapped for another entry, so each
entry stores its full key and a sha256 of its arrays, and a hit is served only if both
match, every array is finite, and the shapes are the ones the caller expects. A failed
entry is deleted, recomputed, and reported on stderr and in the result's notes. Writes
are atomic and follow the umask (a shared cache works); an unwritable cache folder means
one warning and no writes, never a lost evaluation.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from silc_bench.core.console import warn
from silc_bench.core.errors import first_line
from silc_bench.core.files import atomic_write, writable_dir
from silc_bench.core.hashing import canonical_json, hash_obj
from silc_bench.core.paths import cache_root

CACHE_VERSION = 2


def arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class FeatureCache:
    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.root = Path(root) if root else cache_root() / "features"
        self.enabled = enabled
        self.writable = enabled
        self.hits = 0
        self.misses = 0
        self.events: list[str] = []  # entries that failed verification, for the result's notes

    def check_writable(self) -> None:
        """Before the work: an unwritable cache folder degrades to read-only, with one warning."""
        if self.enabled and not writable_dir(self.root):
            self.writable = False
            warn(f"cache folder {self.root} is not writable: features will not be cached this run")

    def _key(self, kind: str, parts: dict[str, Any]) -> dict[str, Any]:
        return {"cache_version": CACHE_VERSION, "kind": kind, **parts}

    def path(self, kind: str, parts: dict[str, Any]) -> Path:
        key = hash_obj(self._key(kind, parts))
        return self.root / kind / key[:2] / f"{key}.safetensors"

    def load(
        self, kind: str, parts: dict[str, Any], rows: dict[str, int] | None = None
    ) -> dict[str, np.ndarray] | None:
        """The verified entry, or None. `rows`: array name → the leading dimension it must have."""
        if not self.enabled:
            return None
        p = self.path(kind, parts)
        if not p.is_file():
            return None
        problem = None
        try:
            from safetensors import safe_open

            with safe_open(str(p), framework="numpy") as f:  # one open: metadata and arrays
                meta = f.metadata() or {}
                arrays = {name: f.get_tensor(name) for name in f.keys()}
        except Exception as e:  # truncated, empty or not a safetensors file
            problem, arrays, meta = f"unreadable ({type(e).__name__})", {}, {}
        if problem is None:
            problem = _verify(arrays, meta, canonical_json(self._key(kind, parts)), rows)
        if problem is None:
            return arrays
        self._discard(p, kind, problem)
        return None

    def _discard(self, p: Path, kind: str, problem: str) -> None:
        msg = f"cache entry {p.name[:16]}… ({kind} features) failed verification: {problem}; recomputed"
        self.events.append(msg)
        warn(msg)
        with contextlib.suppress(OSError):
            p.unlink()

    def save(
        self,
        kind: str,
        parts: dict[str, Any],
        arrays: dict[str, np.ndarray],
        about: dict[str, Any] | None = None,
    ) -> None:
        """`about` (model name, dataset, split) is for `cache list` only: it is not part of
        the key, so an entry is found by content whatever it was called."""
        if not (self.enabled and self.writable):
            return
        p = self.path(kind, parts)
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        meta = {"key": canonical_json(self._key(kind, parts)), "sha256": arrays_checksum(arrays)}
        if about:
            meta["about"] = canonical_json(about)

        def write(tmp: Path) -> None:
            save_file(arrays, str(tmp), metadata=meta)

        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(p, write)
        except Exception as e:  # noqa: BLE001 - a full disk is OSError here, SafetensorError in save_file
            self.writable = False
            why = getattr(e, "strerror", None) or first_line(e) or type(e).__name__
            warn(f"cannot write to the cache folder {self.root} ({why}): features will not be cached")

    def get_or_compute(
        self,
        kind: str,
        parts: dict[str, Any],
        compute: Callable[[], dict[str, np.ndarray]],
        rows: dict[str, int] | None = None,
        about: dict[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        from silc_bench.core import dist

        world = dist.current()
        hit = self.load(kind, parts, rows) if world.main else None
        if world.size > 1:  # rank 0's answer for everyone: no rank reads what another writes
            hit = dist.broadcast(hit)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        arrays = compute()  # collective under torchrun: every rank encodes its block
        if world.main:
            self.save(kind, parts, arrays, about)
        return arrays


def _verify(
    arrays: dict[str, np.ndarray], meta: dict[str, str], key: str, rows: dict[str, int] | None
) -> str | None:
    """What is wrong with a loaded entry, or None when it may be served."""
    if meta.get("key") != key:
        return "its stored key is not this run's (a swapped or foreign entry)"
    if meta.get("sha256") != arrays_checksum(arrays):
        return "checksum mismatch (damaged bytes)"
    for name, n in (rows or {}).items():
        if name not in arrays:
            return f"array {name!r} missing"
        if arrays[name].shape[:1] != (n,):
            got = arrays[name].shape[0] if arrays[name].ndim else 0
            return f"array {name!r} has {got} rows, expected {n}"
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            return f"array {name!r} holds NaN or inf"
    return None


_OUR_NAME = re.compile(r"[0-9a-f]{64}\.safetensors")  # FeatureCache.path: <kind>/<h[:2]>/<h>.safetensors


def entries(root: Path | None = None) -> list[dict[str, Any]]:
    """Every feature entry: path, kind, size, age and the key parts that say what it holds."""
    import json
    import time

    from safetensors import safe_open

    root = Path(root) if root else cache_root() / "features"
    out = []
    now = time.time()
    for p in sorted(root.glob("*/*/*.safetensors")) if root.is_dir() else []:
        if not _OUR_NAME.fullmatch(p.name) or not p.name.startswith(p.parent.name):
            continue  # not named by our key: never listed, never cleared (it may be a user's file)
        try:  # another process may clear it meanwhile; a folder or broken link is not an entry
            st = p.stat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        try:
            with safe_open(str(p), framework="numpy") as f:
                meta = f.metadata() or {}
                key = json.loads(meta.get("key", "{}"))
                about = json.loads(meta.get("about", "{}"))
        except Exception:  # damaged: listed, and cleared like any other
            key, about = {}, {}
        out.append(
            {
                "path": p,
                "kind": p.parent.parent.name,
                "checkpoint_sha256": str(key.get("checkpoint_sha256", "?")),
                "variant": key.get("variant"),
                "split": str(key.get("split", "")),
                "model": str(about.get("model", "?")),  # entries written before 0.x carry no names
                "data": str(about.get("data", "?")),
                "bytes": st.st_size,
                "age_days": (now - st.st_mtime) / 86400,
            }
        )
    return out
