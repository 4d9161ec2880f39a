"""One small generic registry with did-you-mean errors (task plugins, data formats, backends).

An entry is an object, or a lazy `"module:attribute"` path imported on first `get`
(lm-eval's `lazy=` entries): the table of names stays in one place and importing it
imports none of the things it names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from silc_bench.core.errors import did_you_mean

T = TypeVar("T")


class _Lazy(str):
    """A "module:attribute" path, told apart from a registered string value."""


class Registry(Generic[T]):
    """Name → object. `register` is a decorator, `lazy` names an import path; `get` raises a
    UserError listing the valid names. `check`, if given, must accept every object (a wrong
    entry is a programming error, raised as TypeError)."""

    def __init__(self, kind: str, check: Callable[[object], bool] | None = None) -> None:
        self.kind = kind
        self._check = check
        self._items: dict[str, T | _Lazy] = {}

    def _add(self, name: str, obj: T | _Lazy) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = obj

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self._validate(name, obj)
            self._add(name, obj)
            return obj

        return deco

    def lazy(self, name: str, path: str) -> None:
        self._add(name, _Lazy(path))

    def _validate(self, name: str, obj: object) -> None:
        if self._check is not None and not self._check(obj):
            raise TypeError(f"{self.kind} {name!r}: {obj!r} is not a valid entry")

    def get(self, name: str) -> T:
        if name not in self._items:
            raise did_you_mean(self.kind, name, self._items)
        obj = self._items[name]
        if isinstance(obj, _Lazy):
            module, attr = obj.split(":")
            obj = getattr(importlib.import_module(module), attr)
            self._validate(name, obj)
            self._items[name] = obj
        return obj  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
