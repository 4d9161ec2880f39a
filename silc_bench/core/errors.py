"""The one user-facing error type.

Anything raised as `UserError` is bad input (a path, a name, a layout, a checkpoint):
the CLI prints its message as a single line on stderr and exits with code 2, without a
traceback unless `--debug` is given. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input the user can fix; the message says what was expected and what was found."""

    exit_code = 2


def first_line(e: BaseException) -> str:
    """The first non-blank line of an exception's message ("" if it has none): library
    errors (mmcv, torch.compile, PIL) span many lines, and ours must stay one."""
    return next((line.strip() for line in str(e).splitlines() if line.strip()), "")


def did_you_mean(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """An 'unknown X' error listing the valid names, with the closest ones first."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    if not close:
        # 'zscls' vs 'zs-cls': compare with separators removed too.
        squash = {v.replace("-", "").replace("_", ""): v for v in valid}
        hit = difflib.get_close_matches(name.replace("-", "").replace("_", ""), list(squash), n=3)
        close = [squash[h] for h in hit]
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(valid)}")
