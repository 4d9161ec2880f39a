"""The user-level models file: models a user added (`convert --register`), read by `--model`.

The repository's checkpoints.yaml is never written. Entries added here name their weights
by absolute path and sha256, and carry the preprocessing and tokenizer `convert` recorded,
so `--model NAME` evaluates exactly the converted file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from silc_bench.config import load_models, read_yaml
from silc_bench.core.errors import UserError
from silc_bench.core.files import atomic_write_text, exclusive
from silc_bench.core.hashing import file_sha256
from silc_bench.core.paths import user_models_file

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
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or "") or name.startswith(("open_clip", "hf")):
        raise UserError(f"--name {name!r}: use letters, digits, '.', '_', '-' (a letter or digit first)")
    path = user_models_file()
    existing = read_yaml(path) if path.is_file() else {}
    if not isinstance(existing.get("models") or {}, dict):
        raise UserError(f"{path}: `models` must be a mapping of model names to entries")
    mine = dict(existing.get("models") or {})
    if name not in mine and name in load_models():
        raise UserError(f"model {name!r} already exists in the registry; choose another --name")
    if dry_run or meta is None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_name(path.name + ".lock")):
        existing = read_yaml(path) if path.is_file() else {}
        mine = dict(existing.get("models") or {})
        old = mine.get(name) or {}
        mine[name] = _entry(out, meta)
        if isinstance(old, dict) and old.get("override") is True:
            mine[name]["override"] = True  # it replaces a registry model on purpose: keep saying so
        atomic_write_text(
            path,
            "# silc-bench user models (written by `silc-bench convert --register`; edit freely)\n"
            + yaml.safe_dump({"models": mine}, sort_keys=False),
        )
    return path
