"""Disk space: checked before a write that is known to be large, and a full disk (or a
quota, or the file size limit of `ulimit -f`) met during a write turned into one line.

A full `--data-root` must never surface as a traceback from deep inside zipfile, nor leave
a half-written folder: callers clean up their temporary folder on the UserError raised here.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from silc_bench.core.errors import UserError

MARGIN = 64 * 1024 * 1024  # never fill a disk to its last byte


def free_bytes(folder: Path) -> int:
    """Free bytes on the file system that holds `folder` (its nearest existing parent)."""
    for p in (folder, *folder.parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return shutil.disk_usage(".").free


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def ensure_space(folder: Path, need: int, what: str) -> None:
    free = free_bytes(folder)
    if need + MARGIN > free:
        raise UserError(
            f"not enough space under {folder} for {what}: needs {human(need)} (+{human(MARGIN)} margin), "
            f"{human(free)} free; free some space or use another --data-root"
        )


@contextlib.contextmanager
def no_space_is_one_line(folder: Path, what: str) -> Iterator[None]:
    """A write that fails with ENOSPC, EDQUOT or EFBIG becomes a UserError naming the folder.

    EFBIG reaches us as an error, not as a SIGXFSZ core dump, because CPython ignores SIGXFSZ
    at startup."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"no space left under {folder} while {what}; free some space or use another --data-root"
            ) from None
        if e.errno == errno.EFBIG:
            raise UserError(
                f"a file under {folder} reached this shell's file size limit (ulimit -f) while {what}; "
                f"raise it (`ulimit -f unlimited`) and run again"
            ) from None
        raise
