"""`data get`: from official archives to a folder `run` accepts, or to nothing at all.

Order of work, so that a failure at any step leaves nothing `run` would read:

1. archives that need a login are looked for in `<data-root>/.downloads/` (if one is
   missing, say where to get it and stop before downloading anything else);
2. each archive is downloaded (resumably) and verified there;
3. everything is extracted and converted into `.<target>.partial.<pid>.tmp` beside the
   target, and checked against the published split sizes and label ranges;
4. a marker naming every archive's sha256 is written, and only then is the folder renamed
   to its target. Any error or Ctrl-C before the rename removes the partial folder.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from silc_bench.core.errors import UserError
from silc_bench.core.files import remove_stale_tmp, writable_dir
from silc_bench.data.get import (
    archive,
    check,
    convert_cityscapes,
    convert_coco,
    convert_context,
    convert_imagenet,
)
from silc_bench.data.get.catalogue import Archive, Source
from silc_bench.data.get.download import Verified, fetch, verify
from silc_bench.data.get.space import no_space_is_one_line

MARKER = ".silc-bench-source.json"
DOWNLOADS = ".downloads"
CONVERTERS: dict[str, Callable[[Path, bool], None]] = {
    "coco_stuff": convert_coco.convert,
    "pascal_context": convert_context.convert,
    "cityscapes": convert_cityscapes.convert,
    "imagenet_val": convert_imagenet.convert,
}


def read_marker(target: Path) -> dict | None:
    try:
        return json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return None


def manual_instructions(source: Source, data_root: Path) -> str | None:
    """What to download by hand and where to put it, or None when nothing is missing."""
    downloads = data_root / DOWNLOADS
    missing = [a for a in source.archives if a.url is None and not (downloads / a.file).is_file()]
    if not missing:
        return None
    lines = [
        f"{source.name}: {source.description}.",
        "It needs files you download yourself (a login or a licence):",
    ]
    for a in missing:
        lines.append(f"  - {a.file}: {a.manual}")
    lines.append(f"Put them in {downloads}/ (as they are; do not extract them), then run")
    lines.append(f"  silc-bench data get {source.name} --data-root {data_root}")
    lines.append(
        "to verify, extract and convert them, or lay the folder out yourself (docs/datasets.md) and run"
    )
    lines.append(f"  silc-bench data check {source.name} --data-root {data_root}")
    if source.note:
        lines.append(f"Note: {source.note}")
    return "\n".join(lines)


def _obtain(source: Source, data_root: Path, quiet: bool) -> list[tuple[Verified, Archive]]:
    downloads = data_root / DOWNLOADS
    got: list[tuple[Verified, Archive]] = []
    for a in source.archives:
        if a.url is None:
            got.append((verify(downloads / a.file, a, quiet), a))
        else:
            got.append((fetch(a, downloads, quiet), a))
    return got


def _extract(verified: Verified, a: Archive, tmp: Path, quiet: bool) -> None:
    """Extract one archive. A download that proves truncated or corrupt and had no published
    checksum to catch it (a server that sent no length and hung up early) is removed, so that
    the next run fetches it afresh instead of failing on it again; a verified one is kept."""
    try:
        archive.extract(verified.path, a.extract, tmp, quiet)
    except archive.Corrupt as e:
        if verified.published or a.url is None:  # the published file itself, or one fetched by hand
            raise
        verified.path.unlink(missing_ok=True)
        raise UserError(f"{e.problem}; the download was removed, run `silc-bench data get` again") from None


def _missing_parents(path: Path) -> list[Path]:
    """`path` and its parents that do not exist yet, outermost first (removed again on failure)."""
    return [p for p in reversed([path, *path.parents]) if not p.exists()]


def get(source: Source, data_root: Path, quiet: bool, keep_archives: bool) -> tuple[int, str]:
    """Prepare `source` under `data_root`; (exit code, what to print on stdout)."""
    target = data_root / source.target
    if target.exists():
        marker = read_marker(target)
        if marker and marker.get("source") == source.name:
            return (
                0,
                f"{source.name}: already prepared in {target} (marker {MARKER}); "
                f"`silc-bench data check {source.name}` re-verifies it",
            )
        raise UserError(
            f"{target} already exists and was not prepared by `data get`: run "
            f"`silc-bench data check {source.name} --data-root {data_root}` to verify it, "
            f"or move it away to download afresh"
        )
    instructions = manual_instructions(source, data_root)
    if instructions:
        return 1, instructions
    made = _missing_parents(target.parent)
    if not writable_dir(target.parent):
        raise UserError(f"cannot write to {target.parent}: choose a writable --data-root")
    got = _obtain(source, data_root, quiet)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.partial"
    remove_stale_tmp(target.parent, prefix)
    tmp = target.parent / f"{prefix}.{os.getpid()}.tmp"
    try:
        tmp.mkdir()
        for verified, a in got:
            _extract(verified, a, tmp, quiet)
        for name in source.convert:
            if name not in CONVERTERS:
                raise UserError(
                    f"{source.origin}: unknown converter {name!r} (known: {', '.join(CONVERTERS)})"
                )
            with no_space_is_one_line(tmp.parent, f"converting {source.name}"):
                CONVERTERS[name](tmp, quiet)
        shutil.rmtree(tmp / ".work", ignore_errors=True)
        report = check.check_folder(source, tmp, quiet)
        if report.problems:
            raise UserError(
                f"{source.name}: the extracted archives are not the published set ({report.problems[0]}); "
                f"nothing was kept in {target.parent}"
            )
        marker = {
            "source": source.name,
            "uses": list(source.uses),
            "prepared": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "archives": [
                {"file": a.file, "url": a.url, "sha256": v.sha256,
                 "published": ({"algorithm": a.checksum[0], "digest": a.checksum[1], "by": a.checksum_source}
                               if v.published else None)}
                for v, a in got
            ],
            "checks": report.facts,
        }  # fmt: skip
        with no_space_is_one_line(tmp.parent, f"preparing {source.name}"):
            (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    if not keep_archives:
        for v, _ in got:
            v.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (data_root / DOWNLOADS).rmdir()
    return 0, summary(source, target, marker, report)


def summary(source: Source, target: Path, marker: dict, report: check.Report) -> str:
    lines = [f"{source.name}: prepared {target} (for {', '.join(source.uses)}): {'; '.join(report.facts)}"]
    for a in marker["archives"]:
        if a["published"]:
            p = a["published"]
            lines.append(
                f"  {a['file']}: {p['algorithm']} matches the one published by {p['by'] or 'its authors'}"
            )
        else:
            lines.append(
                f"  {a['file']}: sha256 {a['sha256']} (no checksum is published; recorded in {MARKER}, "
                f"compare it with another machine's)"
            )
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines)
