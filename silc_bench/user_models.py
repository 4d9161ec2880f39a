"""The user-level models file: models a user added (`convert --register`), read by `--model`.

The repository's checkpoints.yaml is never written. Entries added here name their weights
by absolute path and sha256, and carry the preprocessing and tokenizer `convert` recorded,
so `--model NAME` evaluates exactly the converted file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from silc_bench.config import load_models, read_yaml, user_models_file
from silc_bench.errors import UserError
from silc_bench.files import exclusive
from silc_bench.hashing import file_sha256

__all__ = ["register_converted", "user_models_file"]


def _entry(out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    arch = {"config": meta["config"]} if meta["arch"] == "custom" else {"open_clip": meta["arch"]}
    src = meta["converted_from"]
    return {
        "description": f"converted from big_vision {src['file']} by silc-bench convert",
        "arch": arch,
        "weights": {"path": str(out), "sha256": file_sha256(out, fresh=True)},
        "preprocess": dict(meta["preprocess"]),
        "tokenizer": dict(meta["tokenizer"]),
        "dense_mode": "patch-proj",
        "tags": ["user"],
    }


def register_converted(name: str, out: Path, meta: dict[str, Any] | None, dry_run: bool = False) -> Path:
    """Add (or, for an earlier user entry of the same name, replace) `name`."""
    if not name or any(c in name for c in ":/ ") or name.startswith(("open_clip", "hf-hub", "local-dir")):
        raise UserError(f"--name {name!r}: a model name is one word without ':', '/' or spaces")
    path = user_models_file()
    existing = read_yaml(path) if path.is_file() else {}
    mine = dict(existing.get("models") or {})
    if name not in mine and name in load_models():
        raise UserError(f"model {name!r} already exists in the registry; choose another --name")
    if dry_run or meta is None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_name(path.name + ".lock")):
        existing = read_yaml(path) if path.is_file() else {}
        mine = dict(existing.get("models") or {})
        mine[name] = _entry(out, meta)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(
            "# silc-bench user models (written by `silc-bench convert --register`; edit freely)\n"
            + yaml.safe_dump({"models": mine}, sort_keys=False)
        )
        os.replace(tmp, path)
    return path
