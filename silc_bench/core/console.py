"""What the user sees on stderr besides errors: warnings, and quieting libraries that log
at the root logger. Separate from `errors` because a warning needs to know the rank (only
rank 0 speaks under torchrun), and `dist` itself raises `UserError`."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from silc_bench.core import dist


def warn(message: str, every_rank: bool = False) -> None:
    """One line on stderr for something the user should know but that does not stop the run
    (under torchrun, from rank 0 only: every rank sees the same data; `every_rank` for what
    only the rank that did it knows, such as which one regenerated a damaged dataset)."""
    if not (dist.current().main or every_rank):
        return
    print(f"silc-bench: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def quiet_root_logger() -> Iterator[None]:
    """open_clip logs "no pretrained weights" at WARNING on the root logger; we load our own."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
