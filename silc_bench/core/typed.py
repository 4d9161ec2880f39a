"""Typed schemas for every file the suite reads: one checker, driven by type hints.

A wrong type in a registry entry, a task YAML, a result or an import row must be one line
naming the file and the field's path (`models.silc-tiny.preprocess.mean: expected a list of
3 numbers, found [0.5, 0.5]`), never a traceback three calls later and never a silently
different number. Each file kind is a dataclass; `conform` checks a parsed mapping against
it, recursively, before anything reads it.

Supported hints: `Any`, `str`, `int` (never `bool`), `float` (an int is accepted), `bool`,
`None`, unions, `Literal[...]`, `list[X]`, `tuple[X, ...]`, `dict[K, V]` and nested
dataclasses (a mapping with unknown keys refused). `Annotated[X, Check(...)]` adds bounds:
a range, an exact length, or a predicate with its description. A `dict` field can carry a
dataclass schema in its metadata (`field(metadata={"schema": Cls})`): the value stays a
plain mapping for the code that reads it, but is checked like `Cls`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from silc_bench.core.errors import UserError


@dataclass(frozen=True)
class Check:
    """Bounds on a value that already has the right type."""

    min: float | None = None
    max: float | None = None
    length: int | None = None
    min_length: int | None = None
    test: Callable[[Any], bool] | None = None
    means: str = ""  # what `test` asks for, for the message

    def problem(self, value: Any) -> str | None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                return "a finite number"
            if self.min is not None and value < self.min:
                return f"a number >= {self.min:g}"
            if self.max is not None and value > self.max:
                return f"a number <= {self.max:g}"
        if self.length is not None and len(value) != self.length:
            return f"exactly {self.length} items"
        if self.min_length is not None and len(value) < self.min_length:
            return f"at least {self.min_length} item(s)"
        if self.test is not None and not self.test(value):
            return self.means or "a valid value"
        return None


class SchemaError(UserError):
    """A value that does not have its schema's type; the message names the field's path."""


def _at(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(hint: Any) -> str:
    """A hint in words, for messages."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return "anything"
    if hint is type(None) or hint is None:
        return "null"
    if origin is Annotated:
        return describe(args[0])
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
    if origin in (list, tuple):
        return f"a list of {describe(args[0])}" if args else "a list"
    if origin is dict:
        return f"a mapping of {describe(args[1])}" if args else "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
             dict: "a mapping", list: "a list"}  # fmt: skip
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def check_value(value: Any, hint: Any, path: str) -> None:
    """Raise SchemaError naming `path` if `value` does not fit `hint`."""

    def fail(expected: str) -> SchemaError:
        return SchemaError(_at(path, f"expected {expected}, found {_short(value)}"))

    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return
    if origin is Annotated:
        check_value(value, args[0], path)
        for extra in args[1:]:
            if isinstance(extra, Check) and (problem := extra.problem(value)):
                raise fail(problem)
        return
    if origin in (Union, types.UnionType):
        errors = []
        for option in args:
            try:
                check_value(value, option, path)
                return
            except SchemaError as e:
                errors.append(e)
        # one option of the right kind explains best (a list of the wrong length, not "or null")
        kinds = [a for a in args if _kind_matches(value, a)]
        if len(kinds) == 1:
            raise errors[list(args).index(kinds[0])]
        raise fail(describe(hint))
    if hint is type(None) or hint is None:
        if value is not None:
            raise fail("null")
        return
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(
            isinstance(a, bool) for a in args if a == value
        ):
            raise fail(describe(hint))
        return
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise fail(describe(hint))
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        if fixed and len(value) != len(args):
            raise fail(describe(hint))
        for i, v in enumerate(value):
            check_value(v, args[i] if fixed else (args[0] if args else Any), f"{path}[{i}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise fail(describe(hint))
        key_hint, item = args if args else (Any, Any)
        for k, v in value.items():
            check_value(k, key_hint, _at(path, "key") if path else "key")
            check_value(v, item, _join(path, k))
        return
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise fail("a mapping")
        check_mapping(value, hint, path)
        return
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("a number")
        return
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("a whole number")
        return
    if isinstance(hint, type) and not isinstance(value, hint):
        raise fail(describe(hint))


def _kind_matches(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin is Annotated:
        return _kind_matches(value, get_args(hint)[0])
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict or dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    return (
        isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    )


def check_mapping(raw: dict[str, Any], cls: type, path: str) -> None:
    """`raw` has only `cls`'s fields, every required one, each of its type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown and not getattr(cls, "OPEN", False):  # OPEN: a format others publish and extend
        dotted = [_join(path, k) for k in unknown]
        valid = f"valid keys in {path}" if path else "valid keys"
        raise SchemaError(f"unknown key(s) {dotted}; {valid}: {list(fields)}")
    required = [
        n for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.init
    ]  # fmt: skip
    missing = [n for n in required if n not in raw]
    if missing:
        raise SchemaError(f"{path or 'the top level'} needs the key(s) {missing}")
    hints = _hints(cls)
    for name, value in raw.items():
        if name not in fields:  # an OPEN format's own extra key
            continue
        where = _join(path, name)
        check_value(value, hints[name], where)
        schema = fields[name].metadata.get("schema")
        if schema is not None and isinstance(value, dict):
            check_mapping(value, schema, where)
        each = fields[name].metadata.get("each")  # a mapping whose every value has a schema
        if each is not None and isinstance(value, dict):
            for k, v in value.items():
                check_value(v, each, _join(where, k))
    validate = getattr(cls, "validate", None)  # a rule across fields (exactly one of ...)
    if callable(validate) and (problem := validate(raw)):
        raise SchemaError(_at(path, problem))


def validate(raw: Any, cls: type, where: str) -> None:
    """Check a parsed mapping against dataclass `cls`; errors start with `where` (the file)."""
    try:
        if not isinstance(raw, dict):
            raise SchemaError(f"expected a mapping, found {_short(raw)}")
        check_mapping(raw, cls, "")
    except SchemaError as e:
        raise SchemaError(f"{where}: {e}") from None


def conform(cls: type, raw: dict[str, Any], where: str) -> Any:
    """An instance of dataclass `cls` from a parsed mapping, after the whole schema check."""
    validate(raw, cls, where)
    return _construct(cls, raw)


def _construct(cls: type, raw: dict[str, Any]) -> Any:
    """The dataclass, with nested dataclass fields built and list values of tuple fields
    made tuples (a frozen config compares and hashes as it reads)."""
    hints = _hints(cls)
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if get_origin(hint) is Annotated:
            hint = get_args(hint)[0]
        options = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
        nested = [o for o in options if dataclasses.is_dataclass(o)]
        if nested and isinstance(value, dict):
            value = _construct(nested[0], value)
        elif any(get_origin(o) is tuple for o in options) and isinstance(value, list | tuple):
            tup = next(o for o in options if get_origin(o) is tuple)
            floats = [a is float for a in get_args(tup)]
            value = tuple(
                float(v) if (floats[min(i, len(floats) - 1)] if floats else False) and type(v) is int else v
                for i, v in enumerate(value)
            )
        elif float in options and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # `lr: 1` is the number 1.0, as it is written back
        kwargs[name] = value
    return cls(**kwargs)
