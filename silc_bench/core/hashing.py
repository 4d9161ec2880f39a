"""Content hashes: checkpoints, datasets, cache keys. Caches are keyed by content, never names.

Every file is hashed in full. Hashing ImageNet's 6 GB on every run would cost a minute,
so digests are memoised in a small SQLite table keyed by the file's identity: real path,
size, mtime_ns, inode and ctime_ns. An in-place edit changes mtime; `cp -p` or `touch -r`
can restore mtime, but not ctime (the kernel sets it on every write, rename and chmod),
and a replaced file gets a new inode. `--verify-data` bypasses the memo, and a checkpoint
whose registry entry names a sha256 is always re-hashed once per process.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20

# True while a run asked for --verify-data: every data file is re-hashed, memo or not.
VERIFY_DATA: contextvars.ContextVar[bool] = contextvars.ContextVar("verify_data", default=False)
# Files hashed for real in this process, by identity: "once per run" for verified checkpoints.
_FRESH: dict[tuple, str] = {}
# Digests this process already had, by the same identity: a second fingerprint of one dataset
# (checking a stored result, then running) costs a stat per file, not a memo lookup.
_SEEN: dict[tuple, str] = {}


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def hash_obj(obj: Any) -> str:
    """sha256 of a JSON-serialisable object in canonical form."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def _identity(path: Path) -> tuple[str, tuple[int, int, int, int]]:
    st = os.stat(path)
    return str(path), (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _hash_bytes(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _Memo:
    """(path, size, mtime_ns, inode, ctime_ns) → sha256, in `<cache>/content-sha256.sqlite`.

    An optimisation only: if the file cannot be opened or written (read-only or corrupt
    cache), lookups miss and nothing is stored.
    """

    def __init__(self) -> None:
        from silc_bench.core.paths import cache_root

        self.db: sqlite3.Connection | None = None
        path = cache_root() / "content-sha256.sqlite"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS memo (path TEXT PRIMARY KEY, size INT, mtime INT,"
                " ino INT, ctime INT, sha TEXT)"
            )
        except (OSError, sqlite3.Error):
            self._close()
        self.pending: list[tuple] = []

    def _close(self) -> None:
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
        self.db = None

    def get(self, path: str, sig: tuple[int, int, int, int]) -> str | None:
        if self.db is None:
            return None
        try:
            row = self.db.execute(
                "SELECT size, mtime, ino, ctime, sha FROM memo WHERE path = ?", (path,)
            ).fetchone()
        except sqlite3.Error:
            self._close()
            return None
        if row is None or tuple(row[:4]) != sig or not isinstance(row[4], str) or len(row[4]) != 64:
            return None
        return row[4]

    def put(self, path: str, sig: tuple[int, int, int, int], sha: str) -> None:
        self.pending.append((path, *sig, sha))

    def flush(self) -> None:
        if self.db is None or not self.pending:
            self.pending.clear()
            return
        try:
            with self.db:  # one transaction: fast, and all-or-nothing on interrupt
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?, ?, ?)", self.pending)
        except sqlite3.Error:
            self._close()
        self.pending.clear()


@contextlib.contextmanager
def _memo() -> Iterator[_Memo]:
    memo = _Memo()
    try:
        yield memo
        memo.flush()
    finally:
        memo._close()


def _sha(path: Path, memo: _Memo, fresh: bool) -> str:
    try:
        return _sha_of(path, memo, fresh)
    except OSError as e:  # a missing label map, a dangling link, a permission problem
        from silc_bench.core.errors import UserError

        raise UserError(f"cannot read {e.filename or path}: {e.strerror or e}") from None


def _sha_of(path: Path, memo: _Memo, fresh: bool) -> str:
    key, sig = _identity(path)
    if fresh:
        digest = _FRESH.get((key, sig))
        if digest is None:
            digest = _FRESH[(key, sig)] = _hash_bytes(path)
            memo.put(key, sig, digest)
        return digest
    digest = _FRESH.get((key, sig)) or _SEEN.get((key, sig)) or memo.get(key, sig)
    if digest is None:
        digest = _hash_bytes(path)
        memo.put(key, sig, digest)
    _SEEN[(key, sig)] = digest
    return digest


def file_sha256(path: Path, fresh: bool = False) -> str:
    """sha256 of a file's bytes. `fresh`: hash it for real (once per process), never the memo."""
    path = Path(path).resolve()
    with _memo() as memo:
        return _sha(path, memo, fresh)


def sha256_many(paths: Iterable[Path]) -> list[str]:
    """The sha256 of each file, memoised (and re-hashed under --verify-data)."""
    fresh = VERIFY_DATA.get()
    with _memo() as memo:
        return [_sha(Path(os.path.abspath(p)), memo, fresh) for p in paths]


def files_fingerprint(
    root: Path, files: Iterable[Path], full: Iterable[Path] = (), digests: list[str] | None = None
) -> str:
    """Fingerprint of a dataset: relative path, size and sha256 of the whole content of
    every image file, plus the metadata files (`full`: split JSONs, class-name files).

    Reading only a header would miss an edit past it at the same size (BMP, TIFF and PPM
    keep their pixels after a fixed header), and serve stale features. `digests`, if given,
    receives each of `files`' sha256 in order: what the loader checks the bytes it reads
    against (`ImageSplit.digests`).
    """
    fresh = VERIFY_DATA.get()
    h = hashlib.sha256()
    with _memo() as memo:
        for p in files:
            p = Path(p)
            h.update(str(p.relative_to(root)).encode() + b"\0")
            digest = _sha(Path(os.path.abspath(p)), memo, fresh)
            h.update(digest.encode())
            if digests is not None:
                digests.append(digest)
        for p in full:
            h.update(str(Path(p).name).encode() + b"\0")
            h.update(_sha(Path(os.path.abspath(p)), memo, fresh).encode())
    return "sha256:" + h.hexdigest()
