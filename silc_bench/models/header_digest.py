"""The convert record bound to the tensors it describes.

A converted file's header says how to preprocess and tokenize for its tensors. When the
registry entry pins no sha256 (`--weights PATH`, an entry written by hand), a hand-edited
header (another mean, std or interpolation) would be trusted. So `convert` stores, inside
its record, `digest`:

- `data_sha256`: sha256 of the file's tensor bytes (everything after the header);
- `sha256`: sha256 of the canonical JSON of {the record without `digest`, the header's
  tensor index (names, dtypes, shapes, offsets), `data_sha256`}.

Editing any field of the record, renaming or reshaping a tensor in the index, or changing
tensor bytes breaks one of the two; the message says which. Cost: one pass over the tensor
bytes, once per file version: a file that passed is remembered by its whole-file sha256
(which the run key computes and memoises anyway), so a later run costs a memo lookup.
Files converted before digests existed are accepted with a warning naming the file.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from silc_bench.core.errors import UserError
from silc_bench.core.hashing import canonical_json, file_sha256

DIGEST_KEY = "digest"
_PLACEHOLDER = {"sha256": "X" * 64, "data_sha256": "Y" * 64}  # same length as a hex digest
_MAX_HEADER = 100 << 20  # safetensors' own limit
_CHUNK = 1 << 20
_warned: set[str] = set()


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """(parsed safetensors header, offset where the tensor bytes start); no tensor is read."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            (n,) = struct.unpack("<Q", raw) if len(raw) == 8 else (-1,)
            if not 0 < n <= _MAX_HEADER:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: corrupt safetensors header ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: corrupt safetensors header (not a mapping)")
    return header, 8 + n


def _data_sha256(path: Path, start: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _record_digest(record: dict[str, Any], header: dict[str, Any], data_sha: str) -> str:
    body = {k: v for k, v in record.items() if k != DIGEST_KEY}
    index = {k: v for k, v in header.items() if k != "__metadata__"}
    blob = canonical_json({"record": body, "tensors": index, "data_sha256": data_sha})
    return hashlib.sha256(blob.encode()).hexdigest()


def placeholder() -> dict[str, str]:
    """What `convert` writes as `digest` before sealing the file (seal() fills it in)."""
    return dict(_PLACEHOLDER)


def seal(path: Path, key: str) -> dict[str, str]:
    """Fill in the placeholder digest of the record under header key `key`, in place: the
    digests have the placeholders' length, so the header keeps its size and the tensor
    offsets stay valid. Returns the digest written."""
    header, start = read_header(path)
    record = json.loads(header["__metadata__"][key])
    data_sha = _data_sha256(path, start)
    digest = {"sha256": _record_digest(record, header, data_sha), "data_sha256": data_sha}
    with open(path, "r+b") as f:
        head = f.read(start)
        for name, mark in _PLACEHOLDER.items():
            if head.count(mark.encode()) != 1:
                raise RuntimeError(f"{path}: the {name} placeholder is not in the header exactly once")
            head = head.replace(mark.encode(), digest[name].encode())
        f.seek(0)
        f.write(head)
    return digest


def _verified_list() -> Path:
    from silc_bench.core.paths import cache_root

    return cache_root() / "converted-headers-verified.txt"


def _known_good(path: Path, full_sha: str) -> bool:
    try:
        return full_sha in _verified_list().read_text().split()
    except OSError:
        return False


def _remember(path: Path, full_sha: str) -> None:
    try:
        f = _verified_list()
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "a") as out:
            out.write(full_sha + "\n")
    except OSError:
        pass  # an optimisation only: the next run checks again


def check_digest(path: Path, record: dict[str, Any]) -> None:
    """Refuse a converted file whose record or tensors changed after conversion."""
    from silc_bench.core.console import warn

    digest = record.get(DIGEST_KEY)
    if digest is None:
        if str(path) not in _warned:
            _warned.add(str(path))
            warn(
                f"{path}: converted before header digests, so its preprocessing and tokenizer record "
                "cannot be checked against its tensors; re-run `silc-bench convert` to add one"
            )
        return
    if not isinstance(digest, dict) or not all(isinstance(digest.get(k), str) for k in _PLACEHOLDER):
        raise UserError(f"{path}: its convert record has a malformed `digest`; re-run `silc-bench convert`")
    full = file_sha256(path)
    if _known_good(path, full):
        return
    header, start = read_header(path)
    data_sha = _data_sha256(path, start)
    if data_sha != digest["data_sha256"]:
        raise UserError(
            f"{path}: its tensors are not the ones its convert record was written for "
            "(tensor-bytes digest mismatch); re-run `silc-bench convert`"
        )
    if _record_digest(record, header, data_sha) != digest["sha256"]:
        raise UserError(
            f"{path}: its convert record (preprocessing, tokenizer, architecture) or tensor index was "
            "edited after conversion (header digest mismatch); re-run `silc-bench convert`"
        )
    _remember(path, full)
