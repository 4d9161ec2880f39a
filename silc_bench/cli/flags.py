"""One convention for the flags every command shares.

- A list flag takes commas and repeats alike: `--models a,b`, `--models a --models b` and
  `--models a b` all give `[a, b]` (a name named twice counts once).
- The results folder is `--results` everywhere; `--out` stays its alias on `run`, `import`
  and `demo`, where it was the spelling before.
- `--device` defaults to `auto` wherever a model runs.
- Every `--help` shows each flag's default (`Parser` in main.py uses the defaults formatter).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

# dataset forms that take a path, which may hold a comma: never split
PATH_FORMS = ("imagefolder:", "wds:")


def split_names(values: Sequence[str], keep_whole: tuple[str, ...] = ()) -> list[str]:
    """Comma-split each value (except those starting with a `keep_whole` prefix), strip,
    drop repeats, keep order. An empty name stays, so the caller can refuse it."""
    names: list[str] = []
    for value in values:
        parts = [value] if value.startswith(keep_whole) else value.split(",")
        names += [p.strip() for p in parts]
    return list(dict.fromkeys(names))


class ListAction(argparse.Action):
    """`--flag a,b --flag c` and `--flag a b` → [a, b, c]."""

    def __init__(self, *args: Any, keep_whole: tuple[str, ...] = (), **kwargs: Any) -> None:
        kwargs.setdefault("nargs", "+")
        super().__init__(*args, **kwargs)
        self.keep_whole = keep_whole

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        before = getattr(namespace, self.dest, None)
        before = [] if before is None or before is self.default else list(before)
        setattr(namespace, self.dest, split_names([*before, *values], self.keep_whole))


def add_list(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *flags: str, **kwargs: Any) -> None:
    parser.add_argument(*flags, action=ListAction, metavar="NAME", **kwargs)


def add_results(
    parser: argparse.ArgumentParser, default: str | None = "results", alias_out: bool = True
) -> None:
    """The results folder: `--results DIR`, with `--out` as its alias where it was spelt so."""
    flags = ("--results", "--out") if alias_out else ("--results",)
    parser.add_argument(*flags, dest="results", default=default, metavar="DIR", help="results folder")


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str = "") -> None:
    parser.add_argument("--device", default="auto", help=f"{what}auto (cuda when available), cpu or cuda")
