"""Content hashes: checkpoints, datasets, cache keys. Caches are keyed by content, never names."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
_HEAD = 4096


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def hash_obj(obj: Any) -> str:
    """sha256 of a JSON-serialisable object in canonical form."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def _memo_path() -> Path:
    from silc_bench.cache import cache_root

    return cache_root() / "file-sha256.json"


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised by (real path, size, mtime) in the cache folder.

    A ViT-L checkpoint takes seconds to hash; re-hashing it on every run would be waste,
    and the memo is invalidated by any write that changes size or mtime.
    """
    path = Path(path).resolve()
    st = path.stat()
    memo_key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = _memo_path()
    memo: dict[str, str] = {}
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if memo_key in memo:
        return memo[memo_key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    memo[memo_key] = digest
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_file)
    except OSError:
        pass  # the memo is an optimisation only
    return digest


def files_fingerprint(root: Path, files: Iterable[Path], full: Iterable[Path] = ()) -> str:
    """Fingerprint of a dataset: relative path, size and first 4 KiB of every image file,
    plus the full bytes of metadata files (`full`: split JSONs, class-name files).

    Reading every byte of ImageNet on each run would cost minutes; path + size + header
    catches re-encoded, replaced, added and removed files, which is what goes wrong.
    """
    h = hashlib.sha256()
    for p in files:
        p = Path(p)
        h.update(str(p.relative_to(root)).encode())
        h.update(str(p.stat().st_size).encode())
        with open(p, "rb") as f:
            h.update(f.read(_HEAD))
    for p in full:
        h.update(str(Path(p).name).encode())
        h.update(Path(p).read_bytes())
    return "sha256:" + h.hexdigest()
