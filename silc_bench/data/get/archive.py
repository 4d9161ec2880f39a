"""Safe extraction of tar and zip archives into a folder of our own.

Every member's name is checked before anything is written, selected or not: an absolute
name, a `..` component or a link that leads outside the archive means the archive is not
the published one, and it is refused whole. Only regular files and folders are written
(the official dataset archives hold nothing else), each into a fresh file opened with
`x`, under a folder this process created, so nothing can be redirected through a link. Two
members that claim one path (a name held twice, a file that is also a folder) are refused
before either is written over the other.

Truncation is caught too: a gzip or zip stream cut short fails its CRC or end-of-stream
check, and an uncompressed tar must end in its two zero blocks (tarfile itself would read a
tar cut at a member boundary as a shorter, valid one).
"""

from __future__ import annotations

import gzip
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from silc_bench.core.errors import UserError
from silc_bench.data.get.download import progress
from silc_bench.data.get.space import ensure_space, no_space_is_one_line

Rules = tuple[tuple[str, str], ...]


class Corrupt(UserError):
    """An archive that is truncated or corrupt; `problem` says how, without the advice, so a
    caller that removes the file can give its own."""

    def __init__(self, archive: Path, problem: str) -> None:
        self.archive, self.problem = archive, problem
        super().__init__(f"{problem}; delete {archive} and run again")


def _safe_name(name: str, archive: Path) -> str:
    """The member name, normalised; refused if it could land outside the target."""
    clean = name.replace("\\", "/")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if clean.startswith("/") or (parts and ":" in parts[0]) or ".." in parts:
        raise UserError(
            f"{archive.name}: member {name!r} would be written outside the target; refusing the archive"
        )
    return "/".join(parts) + ("/" if clean.endswith("/") and parts else "")


def _check_link(name: str, target: str, archive: Path) -> None:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise UserError(
            f"{archive.name}: member {name!r} is a link to {target!r}, outside the archive; refusing it"
        )


def destination(name: str, rules: Rules) -> str | None:
    """Where a member goes under the target (None: not taken). A rule's `from` ending in
    '/' (or empty) is a prefix; otherwise it names one member."""
    for src, dst in rules:
        if src == "" or (src.endswith("/") and name.startswith(src)):
            rest = name[len(src) :]
            return (dst + rest) if rest else None
        if name == src:
            return dst
    return None


def _matches(name: str, src: str) -> bool:
    return src == "" or name == src or (src.endswith("/") and name.startswith(src))


def _unused(rules: Rules, used: set[str], archive: Path) -> None:
    missing = [src for src, _ in rules if src not in used]
    if missing:
        raise UserError(f"{archive.name} holds nothing under {missing[0]!r}: not the published archive")


class _Paths:
    """The files one extraction writes, by destination, so that no two members claim one path."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.files: dict[str, str] = {}  # destination → member
        self.dirs: dict[str, str] = {}  # destination folder → a member inside it

    def claim(self, to: str, name: str) -> None:
        def refuse(why: str) -> UserError:
            return UserError(f"{self.archive.name}: {why}; not the published archive, refusing it")

        if to in self.files:
            other = self.files[to]
            raise refuse(f"it holds member {name!r} more than once" if other == name
                         else f"members {other!r} and {name!r} would both be written to {to!r}")  # fmt: skip
        if to in self.dirs:
            raise refuse(f"member {name!r} is a file and a folder (holding {self.dirs[to]!r})")
        parents = [to[:i] for i, c in enumerate(to) if c == "/"]
        for parent in parents:
            if parent in self.files:
                raise refuse(f"member {name!r} is inside {self.files[parent]!r}, which is a file")
        self.files[to] = name
        for parent in parents:
            self.dirs.setdefault(parent, name)


def _write(stream: IO[bytes], out: Path, dest: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.resolve().is_relative_to(dest.resolve()):  # belt and braces: no folder is a link
            raise UserError(f"{out} resolves outside {dest}; refusing to write it")
        with open(out, "xb") as f:
            shutil.copyfileobj(stream, f, 1 << 20)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):  # another archive wrote it
        raise UserError(
            f"{out.relative_to(dest)} is written by two of this dataset's archives; "
            f"they are not the published set"
        ) from None


def extract(archive: Path, rules: Rules, dest: Path, quiet: bool) -> int:
    """Extract the members `rules` select from `archive` into `dest`; returns the file count."""
    what = f"extracting {archive.name}"
    try:
        with no_space_is_one_line(dest, what):
            if zipfile.is_zipfile(archive):
                return _extract_zip(archive, rules, dest, quiet)
            return _extract_tar(archive, rules, dest, quiet)
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise Corrupt(archive, f"{archive.name} is truncated or corrupt ({type(e).__name__}: {e})") from None
    except OSError as e:
        if e.errno is None:  # a decoder's complaint (bz2's "Invalid data stream"), not the system's
            raise Corrupt(archive, f"{archive.name} is truncated or corrupt ({e})") from None
        raise


def _extract_zip(archive: Path, rules: Rules, dest: Path, quiet: bool) -> int:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        chosen: list[tuple[zipfile.ZipInfo, str]] = []
        used: set[str] = set()
        paths = _Paths(archive)
        for info in infos:
            name = _safe_name(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _check_link(name, zf.read(info).decode("utf-8", "replace"), archive)
                if destination(name, rules) is not None:
                    raise UserError(f"{archive.name}: member {name!r} is a link; dataset archives hold none")
            to = destination(name, rules)
            used |= {src for src, _ in rules if _matches(name, src)}
            if to is not None and not info.is_dir():
                paths.claim(to, name)
                chosen.append((info, to))
        _unused(rules, used, archive)
        ensure_space(dest, sum(i.file_size for i, _ in chosen), f"extracting {archive.name}")
        with progress(sum(i.file_size for i, _ in chosen), f"extract {archive.name}", quiet) as bar:
            for info, to in chosen:
                with zf.open(info) as src:
                    _write(src, dest / to, dest)
                bar.update(info.file_size)
        return len(chosen)


class _Counting:
    """A file wrapper that tells the progress bar how far into the archive tarfile is."""

    def __init__(self, f: IO[bytes], bar) -> None:  # noqa: ANN001
        self.f, self.bar = f, bar

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.bar.update(len(data))
        return data

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.f, name)


def _members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (m := tf.next()) is not None:
        yield m


def _extract_tar(archive: Path, rules: Rules, dest: Path, quiet: bool) -> int:
    with open(archive, "rb") as raw:
        head = raw.read(6)
        compressed = head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))
        if not compressed:
            raw.seek(0, 2)
            size = raw.tell()
            raw.seek(max(size - 1024, 0))
            if size < 1024 or raw.read(1024) != b"\0" * 1024:
                raise Corrupt(archive, f"{archive.name} is truncated or corrupt (no end-of-archive blocks)")
        raw.seek(0)
        count, used, paths = 0, set(), _Paths(archive)
        with progress(archive.stat().st_size, f"extract {archive.name}", quiet) as bar:
            with tarfile.open(fileobj=_Counting(raw, bar), mode="r|*") as tf:  # type: ignore[call-overload]
                for m in _members(tf):
                    name = _safe_name(m.name, archive)
                    if m.issym():
                        _check_link(name, m.linkname, archive)
                    elif m.islnk():  # a hard link names another member by its path
                        _safe_name(m.linkname, archive)
                    to = destination(name.rstrip("/"), rules) if not m.isdir() else None
                    used |= {src for src, _ in rules if _matches(name, src)}
                    if to is None:
                        continue
                    if not m.isfile():
                        kind = "link" if (m.issym() or m.islnk()) else "special file"
                        raise UserError(
                            f"{archive.name}: member {name!r} is a {kind}; dataset archives hold none"
                        )
                    paths.claim(to, name)
                    ensure_space(dest, m.size, f"extracting {archive.name}")
                    src = tf.extractfile(m)
                    assert src is not None
                    _write(src, dest / to, dest)
                    count += 1
        _unused(rules, used, archive)
        return count
