"""`--set key=value` (and `--steps`, `--out`): command-line overrides of a training config.

A quick trial should not need a copy of the YAML file, but it must stay a record: the
overrides merge into the file's mapping before the typed schema check, so a value is read
and refused exactly as the same line in the file would be, and the run's saved config holds
the result. The key is checked first, against the schema's own fields, so that a typo is
"unknown config key 'optim.stpes'. Did you mean 'optim.steps'?" rather than a key the
schema finds later with no hint of where it came from.
"""

from __future__ import annotations

import dataclasses
import shlex
import types
import typing
from dataclasses import dataclass
from typing import Any, Union

import yaml

# the config files' own YAML rule (`1e-3` is a number), so a value reads as it would there
from silc_bench.config.files import _Loader, merge
from silc_bench.core.errors import UserError, did_you_mean, first_line
from silc_bench.core.typed import check_value
from silc_bench.train.config import TrainConfig


def _section(hint: Any) -> type | None:
    """The dataclass a field holds (also inside `X | None`), or None for a plain value."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    return next((o for o in options if dataclasses.is_dataclass(o)), None)


def _is_mapping(hint: Any) -> bool:
    """A free-form `dict` field (model.config): any key below it belongs to open_clip."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    return any(typing.get_origin(o) is dict or o is dict for o in options)


def check_key(key: str) -> Any:
    """`key` names a field of TrainConfig (dotted for nested sections); returns its type hint,
    or None for a key inside a free-form mapping (model.config.*), which has none."""
    cls: type = TrainConfig
    parts = key.split(".")
    for depth, part in enumerate(parts):
        hints = typing.get_type_hints(cls)
        prefix = ".".join(parts[:depth])
        if part not in hints:
            valid = [f"{prefix}.{name}" if prefix else name for name in hints]
            raise did_you_mean("config key", key, valid)
        if depth == len(parts) - 1:
            return hints[part]
        nested = _section(hints[part])
        if nested is None:
            if _is_mapping(hints[part]):
                return None
            here = ".".join(parts[: depth + 1])
            raise UserError(f"unknown config key {key!r}: {here} is a value, not a section")
        cls = nested


def parse_value(text: str, key: str) -> Any:
    """A YAML value, read as the config files read theirs: `1e-3`, `true`, `[0.7, 1.0]`, `null`."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise UserError(f"--set {key}={text}: not a YAML value ({first_line(e)})") from None


def check_type(value: Any, hint: Any, key: str) -> None:
    """`value` has the type its key's field holds, checked before any merge: `--steps` or
    another --set merged over it must not hide a wrong one (`--set optim=5 --steps 2`).
    A mapping for a section is checked after the merge, as a whole (it may name only some
    of the section's keys)."""
    if hint is None or (isinstance(value, dict) and _section(hint) is not None):
        return
    check_value(value, hint, key)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """["optim.lr=1e-3", "objective.head.out_dim=256"] → the nested mapping to merge."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. optim.lr=1e-3")
        try:
            hint = check_key(key)
        except UserError as e:
            raise UserError(f"--set {item}: {e}") from None
        value = parse_value(text.strip(), key)
        try:
            check_type(value, hint, key)
        except UserError as e:
            raise UserError(f"--set {item}: {e}") from None
        node = out
        *sections, last = key.split(".")
        for part in sections:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    return out


@dataclass(frozen=True)
class Overrides:
    """What a command line changes in its config file: `--set` items, `--steps`, `--out`."""

    sets: tuple[str, ...] = ()
    steps: int | None = None  # optim.steps; wins over a --set of the same key
    out: str | None = None  # out_dir

    def mapping(self) -> dict[str, Any]:
        """The nested mapping merged over the file's (after its includes)."""
        over = parse_sets(list(self.sets))
        if self.steps is not None:
            over = merge(over, {"optim": {"steps": self.steps}})
        if self.out is not None:
            over["out_dir"] = self.out
        return over

    def flags(self) -> list[str]:
        """The same overrides as command-line words, for the record and the `reproduce` line."""
        words = [w for item in self.sets for w in ("--set", item)]
        if self.steps is not None:
            words += ["--steps", str(self.steps)]
        if self.out is not None:
            words += ["--out", self.out]
        return words

    def __bool__(self) -> bool:
        return bool(self.sets) or self.steps is not None or self.out is not None


def command_line(config_path: str, overrides: Overrides) -> str:
    """The shell command that trains this run again (the export's `reproduce` line)."""
    return shlex.join(["silc-bench", "train", "--config", config_path, *overrides.flags()])
