"""Downloading one archive: resumable, verified, and moved into place only when verified.

The bytes go to `<downloads>/<file>.part`. An interrupted transfer is retried from where it
stopped with an HTTP Range request (a server that ignores Range is re-read from the start),
and a `.part` left by an earlier run is resumed the same way, so a 7 GB COCO zip cut at 90%
costs 10% to finish. Only once the whole file matches its published checksum (or, where none
is published, once it is whole) is it renamed to `<downloads>/<file>`; a mismatch deletes it,
since resuming a wrong file can never make it right.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from silc_bench.core.errors import UserError
from silc_bench.data.get.catalogue import Archive
from silc_bench.data.get.space import ensure_space, no_space_is_one_line

CHUNK = 1 << 20
TIMEOUT_S = 60
RETRIES = 3  # reconnects within one run before giving up (the .part stays for the next run)


@dataclass(frozen=True)
class Verified:
    path: Path
    sha256: str
    published: bool  # its checksum was checked against a published one


def progress(total: int | None, desc: str, quiet: bool, unit: str = "B", initial: int = 0):  # noqa: ANN201
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit == "B", unit_divisor=1024,
        disable=quiet, leave=False, file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip


def digests(path: Path, algorithms: set[str], quiet: bool) -> dict[str, str]:
    """Hex digests of `path` (sha256 always), in one read, with a progress bar."""
    hashes = {a: hashlib.new(a) for a in {"sha256", *algorithms}}
    with open(path, "rb") as f, progress(path.stat().st_size, f"verify {path.name}", quiet) as bar:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
            bar.update(len(chunk))
    return {a: h.hexdigest() for a, h in hashes.items()}


def verify(path: Path, archive: Archive, quiet: bool) -> Verified:
    """Check `path` against the archive's published checksum. A mismatched download is
    deleted (resuming it could never make it right); a file you fetched by hand is kept."""
    algo = archive.checksum[0] if archive.checksum else "sha256"
    got = digests(path, {algo}, quiet)
    if archive.checksum and got[algo] != archive.checksum[1]:
        where = f" (published by {archive.checksum_source})" if archive.checksum_source else ""
        if archive.url is None:
            raise UserError(
                f"{path}: {algo} {got[algo]} does not match the pinned {archive.checksum[1]}{where}; "
                f"is it the file named in `silc-bench data get`'s instructions, and whole?"
            )
        path.unlink(missing_ok=True)
        raise UserError(
            f"{archive.file}: {algo} {got[algo]} does not match the pinned {archive.checksum[1]}{where}; "
            f"the download was corrupt or the file changed upstream (deleted; run again to re-download)"
        )
    return Verified(path, got["sha256"], archive.checksum is not None)


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    m = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (value or "").strip())
    if not m:
        return None
    return int(m[1]), None if m[2] == "*" else int(m[2])


def _one_pass(url: str, part: Path, quiet: bool) -> int | None:
    """Append to `part` from where it ends; returns the full size if the server said it."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "silc-bench", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the .part is whole (verify decides)
            return have
        raise UserError(f"download {url}: HTTP {e.code} {e.reason}") from None
    with resp:
        total: int | None
        length = resp.headers.get("Content-Length")
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range")) or (-1, None)
            if start != have:
                raise ConnectionError(f"the server resumed at byte {start}, not {have}")
        else:  # 200: the whole file (a server that ignores Range starts over)
            have, total = 0, int(length) if length else None
        mode = "ab" if have else "wb"
        if total is not None:
            ensure_space(part.parent, total - have, f"downloading {part.name[:-5]}")
        with (
            no_space_is_one_line(part.parent, f"downloading {part.name[:-5]}"),
            open(part, mode) as f,
            progress(total, part.name[:-5], quiet, initial=have) as bar,
        ):
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    return total


def fetch(archive: Archive, downloads: Path, quiet: bool) -> Verified:
    """The verified archive in `downloads`, downloading (or resuming) it if needed."""
    dest = downloads / archive.file
    if dest.is_file():  # verified by an earlier run that failed later: verify again, reuse
        return verify(dest, archive, quiet)
    url = archive.fetch_url()
    assert url, archive.file
    downloads.mkdir(parents=True, exist_ok=True)
    part = downloads / f"{archive.file}.part"
    reason = ""
    for _ in range(RETRIES + 1):
        try:
            total = _one_pass(url, part, quiet)
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as e:
            reason = str(getattr(e, "reason", "") or e) or type(e).__name__
            continue
        size = part.stat().st_size if part.exists() else 0
        if total is None or size == total:
            break
        reason = f"the connection closed at {size} of {total} bytes"
        if size > total:
            part.unlink()
    else:
        size = part.stat().st_size if part.exists() else 0
        raise UserError(
            f"download of {archive.file} from {url} failed ({reason}); {size} bytes kept in {part}, "
            f"run the same `silc-bench data get` again to resume"
        )
    verified = verify(part, archive, quiet)
    os.replace(part, dest)
    return Verified(dest, verified.sha256, verified.published)
