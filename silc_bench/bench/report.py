"""reports/perf.md holds one section per benchmark; each benchmark rewrites only its own."""

from __future__ import annotations

import re
from pathlib import Path

from silc_bench.core.files import atomic_write_text

HEADER = "# Performance\n"


def write_section(path: Path, text: str, replaces: tuple[str, ...] = ()) -> None:
    """Replace, in place, the section of `path` whose `## ` heading line equals `text`'s
    first line (or append `text`), keeping every other section.

    The whole heading line is the key, not a prefix of it: "## Sliding-window" must not
    take "## Sliding-window memory at ..." with it. `replaces` names the headings a benchmark
    wrote before it was renamed: those sections go, and the new one takes the first's place.
    """
    heading = text.strip("\n").splitlines()[0].rstrip()
    if not heading.startswith("## "):
        raise ValueError(f"a perf.md section starts with its '## ' heading, not {heading!r}")
    old = path.read_text() if path.is_file() else HEADER
    chunks = re.split(r"(?m)^(?=## )", old)
    head, sections = chunks[0], chunks[1:]
    new = text.strip("\n") + "\n"
    keys = {heading, *(h.rstrip() for h in replaces)}
    at = [i for i, s in enumerate(sections) if s.splitlines()[0].rstrip() in keys]
    sections = [s for i, s in enumerate(sections) if i not in at[1:]]  # one section per benchmark
    if at:
        sections[at[0]] = new  # in place: the file keeps its order
    else:
        sections.append(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, head.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in sections))


def publish(path: Path, text: str, replaces: tuple[str, ...] = ()) -> int:
    """Write a benchmark's section and print it; the exit code of a benchmark that measured."""
    write_section(path, text, replaces)
    print(text)
    return 0
