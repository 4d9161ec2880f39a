"""Small filesystem rules shared by results, the cache and predictions.

Writes are atomic (a temporary name, then `os.replace`), follow the umask so a shared
folder works, and are checked for before the work, never discovered after it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def tmp_name(path: Path) -> Path:
    """The name a file is written under before it takes its own: hidden, and this process's."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write_all(writers: dict[Path, Callable[[Path], object]]) -> None:
    """The one atomic write: each `write(tmp)` fills a name of this process's own, and only
    when every one has succeeded are they renamed into place. A reader (or a second writer)
    never sees half a file, and a failed or interrupted write leaves no debris."""
    tmps = {Path(path): tmp_name(Path(path)) for path in writers}
    try:
        for path, write in writers.items():
            write(tmps[Path(path)])
            os.chmod(tmps[Path(path)], umask_mode())  # as any file the user writes (save_file: 0600)
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    atomic_write_all({Path(path): write})


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def umask_mode(mode: int = 0o666) -> int:
    """`mode` with the process umask applied (os.umask can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def writable_dir(folder: Path) -> bool:
    """True if files can be created in `folder`. Probed by writing (permission bits say
    nothing to root); folders made for the probe are removed again, so a run that fails
    later leaves nothing behind. Safe when several processes (torchrun ranks) probe the same
    new folder at once: a folder another process made is not ours to remove, and a probe
    whose folder vanished under it is retried."""
    for _ in range(3):
        made: list[Path] = []
        try:
            for p in reversed([p for p in (folder, *folder.parents) if not p.exists()]):
                try:
                    p.mkdir()
                    made.append(p)
                except FileExistsError:
                    pass
            probe = folder / f".probe.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return True
        except FileNotFoundError:
            continue  # another process removed its probe folder between our mkdir and write
        except OSError:
            return False
        finally:
            for p in reversed(made):
                with contextlib.suppress(OSError):
                    p.rmdir()
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(folder: Path, prefix: str) -> None:
    """Remove `<prefix>.<pid>.tmp` files and folders left by processes that no longer run
    (an interrupted or killed write); a live writer's temporary is left alone."""
    if not folder.is_dir():
        return
    for p in folder.glob(f"{prefix}.*.tmp"):
        pid = p.name[len(prefix) + 1 : -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


@contextlib.contextmanager
def exclusive(lock_path: Path):  # noqa: ANN201
    """An exclusive advisory lock (flock) for read-modify-write of a shared file."""
    import fcntl

    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
