"""`silc-bench import --task ov-seg FILE`: numbers measured elsewhere, as ordinary results.

This suite does not train CAT-Seg. A user who ran it on top of a SILC or CLIP checkpoint
brings one row per (model, dataset): `model,checkpoint_sha256,dataset,mIoU` as CSV, or a
JSON list of objects with those keys (`method` is optional, default CAT-Seg). Each row
becomes a result file marked `source: imported`, which Table 3 shows next to the paper.
Every row is validated before anything is written: bad input writes nothing.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from silc_bench.core.errors import UserError, did_you_mean
from silc_bench.core.files import writable_dir
from silc_bench.core.typed import validate
from silc_bench.results.key import ResultKey
from silc_bench.results.schema import Result, environment, now_iso, write_result

if TYPE_CHECKING:
    from silc_bench.models.resolve import ModelRef

OV_SEG_DATASETS = ("ade847", "pc459", "ade20k", "pc59", "voc20", "voc21")
IMPORT_TASKS = {"ov-seg": OV_SEG_DATASETS}
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_KEYS = ("model", "checkpoint_sha256", "dataset", "mIoU")


@dataclass
class ImportRow:
    """One row of an import file (a JSON object; a CSV row's fields are all text)."""

    model: str
    checkpoint_sha256: str
    dataset: str
    mIoU: float | str  # noqa: N815 - the column is named as the metric
    method: str | None = None


def _text(path: Path) -> str:
    """UTF-8 (a spreadsheet's BOM dropped) or UTF-16 with its BOM (Excel's "Unicode text")."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    encoding = "utf-16" if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        why = f"not UTF-8 or UTF-16 text (byte {e.start})"
        raise UserError(f"{path}: {why}; save it as UTF-8 CSV or JSON") from None


def _rows(path: Path) -> list[dict[str, Any]]:
    text = _text(path)
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except ValueError as e:
            raise UserError(f"{path}: invalid JSON ({e})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{path}: expected a JSON list of objects with {', '.join(_KEYS)}")
        for i, row in enumerate(rows, 1):
            validate(row, ImportRow, f"{path} row {i}")
        return rows
    lines = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in (lines[0] if lines else [])]
    missing = [k for k in _KEYS if k not in header]
    if missing:
        raise UserError(f"{path}: CSV header lacks {missing}; expected columns {','.join(_KEYS)}[,method]")
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise UserError(f"{path}: CSV header names {twice} more than once")
    rows = []
    for i, fields in enumerate(lines[1:], 1):
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):  # a decimal comma or a stray field would shift the columns
            raise UserError(f"{path} row {i}: {len(fields)} fields for {len(header)} columns")
        rows.append(dict(zip(header, fields)))
    return rows


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise UserError(f"{where}: mIoU {value!r} is not a number")
    if not isinstance(value, (int, float)) and not _DECIMAL.fullmatch(str(value).strip()):
        raise UserError(f"{where}: mIoU {value!r} is not a number")  # float() takes "1_5.5"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: mIoU {value!r} is not a number") from None
    if not math.isfinite(v) or not 0 <= v <= 100:
        raise UserError(f"{where}: mIoU {value!r} is outside 0-100")
    return v


def _not_fractions(values: list[float], path: Path) -> None:
    """mIoU is in points (0-100). A file whose every value is at most 1 almost surely holds
    fractions (0.155 for 15.5): refused, rather than shown as 0.2 beside the paper's 15.0."""
    if values and max(values) <= 1.0:
        raise UserError(f"{path}: every mIoU is at most 1 ({values[0]!r}, ...): give points, not fractions")


def import_results(task: str, path: Path, out: Path) -> list[Path]:
    """Validate every row, then write one result per row; the paths written."""
    if task not in IMPORT_TASKS:
        raise did_you_mean("import task", task, IMPORT_TASKS)
    path = Path(path)
    rows = _rows(path)
    if not rows:
        raise UserError(f"{path}: no rows")
    from silc_bench.models.resolve import parse_model_ref  # torch: only once the file is good

    file_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    seen: set[tuple[str, str]] = set()
    results = []
    for i, row in enumerate(rows, 1):
        where = f"{path} row {i}"
        typed, dataset = _names(row, task, where)
        ref = parse_model_ref(typed)  # a registry name: its paper_row links it to the tables
        model = _table_model(ref, typed, row, where)
        if (model, dataset) in seen:  # `silc-b16` and `silc-b16:teacher` are one model
            raise UserError(f"{where}: duplicate row for {model} on {dataset}")
        seen.add((model, dataset))
        sha = _checkpoint_sha(row, where)
        results.append(_result(task, path, file_sha, i, row, model, ref.variant, dataset, sha, where))
    _not_fractions([r.metrics["mIoU"] for r in results], path)
    targets = [ResultKey(r.model, task, r.dataset).to_path(out) for r in results]
    _check_targets(targets)
    for target, r in zip(targets, results):
        write_result(target, r)
    return targets


def _names(row: dict[str, Any], task: str, where: str) -> tuple[str, str]:
    """A row needs every key, and a dataset the task knows; returns (model as typed, dataset)."""
    lacking = [k for k in _KEYS if not str(row.get(k) or "").strip()]
    if lacking:
        raise UserError(f"{where}: missing {lacking}")
    typed, dataset = str(row["model"]).strip(), str(row["dataset"]).strip()
    if dataset not in IMPORT_TASKS[task]:
        raise did_you_mean(f"{task} dataset ({where})", dataset, IMPORT_TASKS[task])
    return typed, dataset


def _table_model(ref: ModelRef, typed: str, row: dict[str, Any], where: str) -> str:
    """Only a registry model Table 3 can show is importable; returns the name results are kept under."""
    default = ref.spec.default_variant or next(iter(ref.spec.variants), None)
    if not ref.spec.paper_row:
        raise UserError(
            f"{where}: model {typed!r} has no paper_row in the registry, so no table could show it"
        )
    if ref.variant not in (None, default):
        raise UserError(f"{where}: Table 3 holds the paper's {default} models, not {typed!r}")
    if not isinstance(row.get("method") or "", str):
        raise UserError(f"{where}: method must be text, not {row.get('method')!r}")
    return ref.spec.name if ref.variant in (None, default) else f"{ref.spec.name}:{ref.variant}"


def _checkpoint_sha(row: dict[str, Any], where: str) -> str:
    """The checkpoint's sha256 identifies the weights measured; it must be a full hex digest."""
    sha = str(row["checkpoint_sha256"]).strip().lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise UserError(f"{where}: checkpoint_sha256 must be 64 hex digits")
    return sha


def _result(
    task: str,
    path: Path,
    file_sha: str,
    i: int,
    row: dict[str, Any],
    model: str,
    variant: str | None,
    dataset: str,
    sha: str,
    where: str,
) -> Result:
    """One validated row as an ordinary result, marked imported and traced to its file and row."""
    return Result(
        model=model,
        variant=variant,
        checkpoint_sha256=sha,
        task=task,
        task_version=1,
        dataset=dataset,
        dataset_fingerprint="imported",
        protocol={
            "source": "imported",
            "method": str(row.get("method") or "CAT-Seg"),
            "file": str(path),
            "file_sha256": file_sha,
            "row": i,
        },
        metrics={"mIoU": _number(row["mIoU"], where)},
        precision="unknown",
        notes=[f"imported from {path.name}: measured outside silc-bench"],
        env={"source": "imported", **environment("none")},
        created=now_iso(),
    )


def _check_targets(targets: list[Path]) -> None:
    """All or nothing: every target must be writable before the first result is written."""
    for target in targets:
        if target.exists() and not target.is_file():
            raise UserError(f"--out: {target} exists and is not a file")
    for folder in dict.fromkeys(t.parent for t in targets):  # all or nothing: check before writing
        if not writable_dir(folder):
            raise UserError(f"--out: cannot write results into {folder} (not a writable folder)")
