"""Where a result lives and what it answers: one `ResultKey` for the CLI, tables and checks.

A result is named by (model as typed, task, dataset, profile, task options). The file
layout is `<out>/<model>/<task>/<dataset>[@profile][+tag...].json`, and the registry's
reference keys (`expected:`, `paper:`) are `task/dataset[@profile][+tag...]`. Both come
from here, so no other module parses a file name to learn what a result contains.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from silc_bench.config import DEFAULT_PROFILE
from silc_bench.core.errors import UserError

if TYPE_CHECKING:
    from silc_bench.results.schema import Result

# options that change the number, and their short names in file names and keys
_TAG_NAMES = {"classnames": "names", "dense_mode": "dense", "pamr": "pamr", "tcl_ensemble": "tcl-ensemble"}


def option_tags(options: dict[str, Any]) -> tuple[str, ...]:
    """`{"dense_mode": "sclip", "pamr": True}` → `("dense-sclip", "pamr")`. Options that do
    not change the number (save_predictions) have no tag."""
    tags = []
    for name in sorted(options):
        value = options[name]
        short = _TAG_NAMES.get(name)
        if short is None or value in (None, False, ""):
            continue
        tags.append(short if value is True else f"{short}-{value}")
    return tuple(tags)


_SAFE = re.compile(r"[A-Za-z0-9._@+-]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def safe_component(name: str, what: str) -> str:
    """The one gate where a name becomes a path component: only `[A-Za-z0-9._@+-]`, never
    `.`, `..` or a hidden name, so no model, task or dataset name writes outside `--out`."""
    if not _SAFE.fullmatch(name) or name.startswith("."):
        raise UserError(
            f"{what} {name!r} cannot name a results file: use letters, digits and . _ @ + - only "
            "(and no leading '.')"
        )
    return name


def model_dirname(model_ref: str) -> str:
    """`--model` as typed, with ':' as '@' (so `silc-tiny@student` is its own folder). A name
    with '/' (hf-hub:ORG/NAME, local-dir:PATH) also carries 8 hex digits of itself, so
    `hf-hub:a/b` and `hf-hub:a_b` never share a folder."""
    ref = model_ref.replace(":", "@")
    if "/" not in ref:
        return ref
    return f"{_UNSAFE.sub('_', ref)}-{hashlib.sha256(model_ref.encode()).hexdigest()[:8]}"


def dataset_filename(dataset: str, profile: str = DEFAULT_PROFILE, default: str = DEFAULT_PROFILE) -> str:
    """The display name: `imagefolder:PATH` → `imagefolder-<last folder>`; a profile other
    than the task's default adds `@name`."""
    base, _, arg = dataset.partition(":")
    name = f"{base}-{Path(arg.rstrip('/')).name}" if arg else base
    return name if profile == default else f"{name}@{profile}"


def dataset_stem(dataset: str, data_root: Path, profile: str, default: str = DEFAULT_PROFILE) -> str:
    """The file name: as `dataset_filename`, but `imagefolder:PATH` also carries 8 hex digits
    of the resolved absolute path, so `/a/pets` and `/b/pets` never share a result file."""
    base, _, arg = dataset.partition(":")
    if not arg:
        return dataset_filename(dataset, profile, default)
    where = Path(arg).expanduser()
    where = (where if where.is_absolute() else Path(data_root) / where).resolve()
    name = f"{base}-{_UNSAFE.sub('_', where.name)}-{hashlib.sha256(str(where).encode()).hexdigest()[:8]}"
    return name if profile == default else f"{name}@{profile}"


def result_path(
    out: Path,
    model_ref: str,
    task: str,
    dataset: str,
    profile: str,
    default_profile: str = DEFAULT_PROFILE,
    data_root: Path = Path("."),
) -> Path:
    fname = safe_component(dataset_stem(dataset, data_root, profile, default_profile), "dataset")
    model = safe_component(model_dirname(model_ref), "model")
    return Path(out) / model / safe_component(task, "task") / f"{fname}.json"


def limit_tags(limit: int | None) -> tuple[str, ...]:
    """A `--limit N` smoke run gets a file of its own (`+limit-N`), so it never replaces,
    and is never mistaken for, the full result."""
    return () if limit is None else (f"limit-{int(limit)}",)


def weights_tags(identity: dict[str, Any] | None) -> tuple[str, ...]:
    """A run with `--weights` gets a file of its own, named by its weights
    (`+weights-<first 8 hex of the sha256>`): it never replaces the registry's own result,
    and two runs with other files into one `--out` never overwrite each other."""
    ident = identity or {}
    shas = ident.get("weights_sha256") or []
    if not ident.get("weights_override") or not shas:
        return ()
    combined = shas[0] if len(shas) == 1 else hashlib.sha256("".join(shas).encode()).hexdigest()
    return (f"weights-{combined[:8]}",)


def text_tags(text_encoding: str | None) -> tuple[str, ...]:
    """`--text-encoding full` (the old full-context path) gets a file of its own, `+text-full`:
    the default, trimmed, keeps the names results always had."""
    return ("text-full",) if text_encoding == "full" else ()


_EXECUTION_TAGS = {"compile": "compile", "channels_last": "channels-last", "decode": "decode"}


def execution_tags(precision: str, execution: dict[str, Any] | None) -> tuple[str, ...]:
    """A run at another precision or with a fast-path option that may round differently
    (`+bf16`, `+compile`, `+channels-last`, `+decode-gpu`) gets a file of its own: it never
    replaces the fp32 result, and tables and `check --regression` never take it for one."""
    tags = [] if precision == "fp32" else [precision]
    for name, value in sorted((execution or {}).items()):
        short = _EXECUTION_TAGS.get(name, name.replace("_", "-"))
        plain = value is True or (name == "compile" and value == "inductor")  # the default backend
        tags.append(short if plain else f"{short}-{value}")
    return tuple(tags)


@dataclass(frozen=True)
class ResultKey:
    """What a result answers: model (as typed), task, dataset, profile and option tags."""

    model: str
    task: str
    dataset: str
    profile: str = DEFAULT_PROFILE
    default_profile: str = DEFAULT_PROFILE
    tags: tuple[str, ...] = ()

    @classmethod
    def from_result(cls, r: Result, default_profile: str) -> ResultKey:
        tags = (
            option_tags(r.options)
            + limit_tags(r.protocol.get("limit"))
            + execution_tags(r.precision, r.run_key.get("execution"))
            + weights_tags(r.run_key.get("model") if isinstance(r.run_key.get("model"), dict) else None)
            + text_tags(r.run_key.get("text_encoding"))
        )
        return cls(r.model, r.task, r.dataset, r.profile, default_profile, tags)

    @property
    def is_default(self) -> bool:
        """Run with the task's default profile and no number-changing option."""
        return self.profile == self.default_profile and not self.tags

    def display_dataset(self) -> str:
        return dataset_filename(self.dataset, self.profile, self.default_profile)

    def reference_key(self) -> str:
        """The registry key (`expected:`, `paper:`) this result compares with:
        `task/dataset[@profile][+tag...]`. A reference must name every option it was
        measured with, so a default run is never compared with a dense-mode variant."""
        return f"{self.task}/{self.display_dataset()}" + "".join(f"+{t}" for t in self.tags)

    def to_path(self, out: Path, data_root: Path = Path(".")) -> Path:
        path = result_path(
            out, self.model, self.task, self.dataset, self.profile, self.default_profile, data_root
        )
        stem = safe_component(f"{path.stem}{''.join('+' + t for t in self.tags)}", "result")
        return path.with_name(f"{stem}.json")
