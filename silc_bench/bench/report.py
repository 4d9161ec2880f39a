"""reports/perf.md holds one section per benchmark; each benchmark rewrites only its own."""

from __future__ import annotations

import re
from pathlib import Path

from silc_bench.core.files import atomic_write_text

HEADER = "# Performance\n"


def write_section(path: Path, text: str) -> None:
    """Replace, in place, the section of `path` whose `## ` heading line equals `text`'s
    first line (or append `text`), keeping every other section.

    The whole heading line is the key, not a prefix of it: "## Sliding-window" must not
    take "## Sliding-window memory at ..." with it.
    """
    heading = text.strip("\n").splitlines()[0].rstrip()
    if not heading.startswith("## "):
        raise ValueError(f"a perf.md section starts with its '## ' heading, not {heading!r}")
    old = path.read_text() if path.is_file() else HEADER
    chunks = re.split(r"(?m)^(?=## )", old)
    head, sections = chunks[0], chunks[1:]
    new = text.strip("\n") + "\n"
    at = [i for i, s in enumerate(sections) if s.splitlines()[0].rstrip() == heading]
    sections = [s for i, s in enumerate(sections) if i not in at[1:]]  # one section per heading
    if at:
        sections[at[0]] = new  # in place: the file keeps its order
    else:
        sections.append(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, head.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in sections))


def publish(path: Path, text: str) -> int:
    """Write a benchmark's section and print it; the exit code of a benchmark that measured."""
    write_section(path, text)
    print(text)
    return 0
