"""A model whose towers are built only when a forward pass needs them.

A run whose every feature is already cached (a forced re-run, a second task on the same
split) needs a model's facts (checkpoint sha256, preprocessing, tokenizer, backend,
whether its text tower may be trimmed) but no forward pass. Building the model costs its
imports (open_clip, timm, torchvision: seconds on a CPU) and reading its weights.

So the facts are remembered in the cache folder, keyed by everything that decides them:
the model's identity (every weight file's sha256, the registry settings, the seed of a
random init), where its files are, the precision, the versions of the libraries that
build it (_LIBRARIES), and the source of silc-bench's model code and shipped
architecture configs. A memo is written only from a
model that was built, and is checked on every read (its key and a sha256 of its facts).
A deferred model serves the facts and builds its towers on first use; the built model's
facts must equal the memo's, or the memo is deleted and the run stops ("run again")
before any number is written: a stale memo can cost a run, never a wrong result.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from silc_bench.core.errors import UserError
from silc_bench.core.files import atomic_write_text
from silc_bench.core.hashing import canonical_json, hash_obj
from silc_bench.core.paths import ASSETS, cache_root
from silc_bench.models.adapter import Towers, VLModel
from silc_bench.models.preprocess import Preprocess

FACTS_VERSION = 1
_PACKAGE = Path(__file__).resolve().parents[1]  # silc_bench/
_LIBRARIES = ("torch", "open_clip_torch", "timm", "safetensors", "sentencepiece")


def facts_of(model: VLModel) -> dict[str, Any]:
    """What a result and the feature-cache keys read from a model, as JSON."""
    facts = {
        "name": model.name,
        "variant": model.variant,
        "checkpoint_sha256": model.checkpoint_sha256,
        "preprocess": model.preprocess.to_dict(),
        "dense_mode": model.dense_mode,
        "info": model.info,
        "text_trimmable": bool(model.text_trimmable),
    }
    return json.loads(canonical_json(facts))  # as a memo holds them: lists, strings


@functools.cache  # neither changes while a process runs
def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.cache
def _code_sha256() -> str:
    """The model-building code and the shipped architecture configs: a change to either may
    change a fact, so it starts new memos."""
    files = sorted([*(_PACKAGE / "models").rglob("*.py"), *(_PACKAGE / "config").rglob("*.py")])
    files += sorted((ASSETS / "model_configs").glob("*.json"))
    h = hashlib.sha256()
    for p in files:
        data = p.read_bytes()
        h.update(f"{p.relative_to(p.parents[1])}|{len(data)}|".encode())
        h.update(data)
    return h.hexdigest()


def memo_key(identity: dict[str, Any], precision: str, location: dict[str, Any]) -> dict[str, Any]:
    return {
        "facts_version": FACTS_VERSION,
        "identity": identity,
        "location": location,  # the files' paths are facts too (results record them)
        "precision": precision,
        "libraries": _versions(),
        "code_sha256": _code_sha256(),
    }


class FactsMemo:
    """One JSON file per model key under the cache folder's `models/`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else cache_root() / "models"

    def path(self, key: dict[str, Any]) -> Path:
        return self.root / f"{hash_obj(key)}.json"

    def read(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """The facts, or None (absent, unreadable, or not this key's: such a file is removed)."""
        path = self.path(key)
        try:
            entry = json.loads(path.read_text())
            ok = (
                entry.get("key") == json.loads(canonical_json(key))
                and entry.get("sha256") == hash_obj(entry.get("facts"))
                and isinstance(entry["facts"], dict)
            )
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            ok, entry = False, None
        if ok:
            return entry["facts"]
        if path.exists():
            self.forget(key)
        return None

    def write(self, key: dict[str, Any], facts: dict[str, Any]) -> None:
        """Best effort: a cache folder that cannot be written only means the next run builds."""
        entry = {"key": key, "facts": facts, "sha256": hash_obj(facts)}
        with contextlib.suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path(key), canonical_json(entry))

    def forget(self, key: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.path(key).unlink()

    def clear(self, checkpoint_sha256: str | None = None) -> int:
        """Remove the memos (of one checkpoint, or all): only files named as this class names
        them, so a folder that is not a memo folder never loses a file. Returns the count."""
        removed = 0
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            if not re.fullmatch(r"[0-9a-f]{64}\.json", path.name):
                continue
            if checkpoint_sha256 is not None:
                try:
                    facts = json.loads(path.read_text()).get("facts") or {}
                except (OSError, ValueError, AttributeError):
                    facts = {}
                if facts.get("checkpoint_sha256") != checkpoint_sha256:
                    continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed


def load_or_defer(
    ref: str,
    identity: dict[str, Any],
    location: Callable[[], dict[str, Any]],
    precision: str,
    device: str,
    build: Callable[[], VLModel],
    memo: FactsMemo | None,
) -> VLModel:
    """The built model (and its facts remembered), or, when a memo has them, a model whose
    towers `build` makes on first use. `memo=None` (the cache is off): always built."""
    if memo is None:
        return build()
    key = memo_key(identity, precision, location())
    facts = memo.read(key)
    if facts is None:
        model = build()
        memo.write(key, facts_of(model))
        return model

    def towers() -> Towers:
        model = build()
        built = facts_of(model)
        if built != facts:
            memo.forget(key)
            changed = sorted(k for k in {*facts, *built} if built.get(k) != facts.get(k))
            raise UserError(
                f"model {ref}: the facts remembered for it ({', '.join(changed)}) are not those of "
                f"the model built now; the memo is deleted, nothing was written: run again"
            )
        return model.towers

    return VLModel(
        ref=ref,
        name=facts["name"],
        variant=facts["variant"],
        checkpoint_sha256=facts["checkpoint_sha256"],
        towers=Towers(build=towers),
        preprocess=Preprocess.from_dict(facts["preprocess"], f"model {ref} (remembered facts)"),
        dense_mode=facts["dense_mode"],
        device=torch.device(device),
        precision=precision,
        info=facts["info"],
        identity=identity,
        text_trimmable=facts["text_trimmable"],
    )
