"""The catalogue of datasets `silc-bench data get` knows: one YAML file per source under
`silc_bench/data/sources/`.

A *source* is what one folder under `--data-root` is prepared from: its official archives
(URL, the checksum a public party publishes, which members go where), the converters that
turn its annotations into the layout `run` reads, and the checks `data check` applies
(the published split sizes). One source can serve several `run` datasets (COCO-Stuff's
folder holds both coco-stuff and coco-object), so `uses` lists them and either name finds it.

Data, not code, so that a URL that moves is a one-line change, and so that a mirror or a
test can swap a file in: `$SILC_BENCH_DATA_SOURCES` (folders, `:`-separated) holds YAML
files that replace the built-in one of the same name, and `$SILC_BENCH_DATA_MIRROR` fetches
every archive from `<mirror>/<file name>` instead of its URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from silc_bench.core.errors import UserError, did_you_mean

BUILTIN = Path(__file__).resolve().parents[1] / "sources"
ALGORITHMS = ("md5", "sha1", "sha256")
_SOURCE_KEYS = {"description", "uses", "target", "archives", "convert", "checks", "note"}
_ARCHIVE_KEYS = {"file", "url", "manual", "checksum_source", "extract", *ALGORITHMS}


@dataclass(frozen=True)
class Archive:
    """One official file: where it comes from, how it is verified, what is taken from it."""

    file: str
    url: str | None  # None: it needs a login or a licence click (`manual` says how)
    manual: str | None
    checksum: tuple[str, str] | None  # (algorithm, hex digest) as published, or None
    checksum_source: str
    extract: tuple[tuple[str, str], ...]  # (member prefix or name, path under the target)

    def fetch_url(self) -> str | None:
        mirror = os.environ.get("SILC_BENCH_DATA_MIRROR", "").rstrip("/")
        if mirror and self.url:
            return f"{mirror}/{self.file}"
        return self.url


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    uses: tuple[str, ...]
    target: str  # folder under --data-root, prepared whole, then renamed into place
    archives: tuple[Archive, ...]
    convert: tuple[str, ...] = ()
    checks: tuple[dict[str, Any], ...] = ()
    note: str | None = None
    origin: Path = field(default=BUILTIN)

    @property
    def manual(self) -> bool:
        return any(a.url is None for a in self.archives)


def source_dirs() -> list[Path]:
    """Override folders first (they win), then the built-in catalogue."""
    extra = [
        Path(p).expanduser() for p in os.environ.get("SILC_BENCH_DATA_SOURCES", "").split(os.pathsep) if p
    ]
    return [*extra, BUILTIN]


def _files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in reversed(source_dirs()):  # later (built-in) first, overrides replace them
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return found


def names() -> list[str]:
    return sorted(_files())


def _archive(raw: Any, where: str) -> Archive:
    if not isinstance(raw, dict) or "file" not in raw:
        raise UserError(f"{where}: each archive needs at least `file`")
    unknown = set(raw) - _ARCHIVE_KEYS
    if unknown:
        raise UserError(f"{where}: unknown archive key(s) {sorted(unknown)}")
    sums = [(algo, str(raw[algo]).lower()) for algo in ALGORITHMS if raw.get(algo)]
    if len(sums) > 1:
        raise UserError(f"{where}: {raw['file']} names more than one checksum; keep the published one")
    if not raw.get("url") and not raw.get("manual"):
        raise UserError(f"{where}: {raw['file']} needs a `url` or `manual` instructions")
    rules = []
    for rule in raw.get("extract") or []:
        if not isinstance(rule, dict) or set(rule) != {"from", "to"}:
            raise UserError(f"{where}: extract rules are {{from: member, to: path}}, got {rule!r}")
        rules.append((str(rule["from"] or ""), str(rule["to"] or "")))
    if not rules:
        raise UserError(f"{where}: {raw['file']} extracts nothing")
    return Archive(
        file=str(raw["file"]),
        url=raw.get("url"),
        manual=raw.get("manual"),
        checksum=sums[0] if sums else None,
        checksum_source=str(raw.get("checksum_source", "")),
        extract=tuple(rules),
    )


def load(name: str) -> Source:
    """The source `name`, or the one whose `uses` lists it (pc59 → pascal-context)."""
    files = _files()
    if name not in files:
        owners = {u: n for n in files for u in _read(files[n]).get("uses", [])}
        if name not in owners:
            raise did_you_mean("dataset for `data`", name, {*files, *owners})
        name = owners[name]
    path = files[name]
    raw = _read(path)
    unknown = set(raw) - _SOURCE_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {sorted(unknown)}")
    for key in ("target", "archives"):
        if not raw.get(key):
            raise UserError(f"{path}: `{key}` is required")
    return Source(
        name=name,
        description=str(raw.get("description", "")),
        uses=tuple(raw.get("uses") or [name]),
        target=str(raw["target"]),
        archives=tuple(_archive(a, str(path)) for a in raw["archives"]),
        convert=tuple(raw.get("convert") or ()),
        checks=tuple(raw.get("checks") or ()),
        note=raw.get("note"),
        origin=path,
    )


def fetch_hint(dataset: str, root: Path | str) -> str:
    """How to get `dataset` under `root`, for the error that finds it missing: the
    `data get` command where the catalogue knows a source for it, else ''."""
    files = _files()
    owner = next((n for n in files if dataset == n or dataset in (_read(files[n]).get("uses") or [])), None)
    if owner is None:
        return ""
    if any(not a.get("url") for a in _read(files[owner]).get("archives") or []):
        return f"; `silc-bench data get {dataset}` says what to download by hand and where it goes"
    return f"; `silc-bench data get {dataset} --data-root {root}` downloads and prepares it"


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"{path}: not readable YAML ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of source keys")
    return raw
