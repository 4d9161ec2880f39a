"""reports/perf.md holds one section per benchmark; each benchmark rewrites only its own."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = "# Performance\n"


def write_section(path: Path, title: str, text: str) -> None:
    """Replace the section of `path` whose heading starts with `## {title}` (or append
    `text`, which starts with its own `## ` heading), keeping every other section."""
    old = path.read_text() if path.is_file() else HEADER
    chunks = re.split(r"(?m)^(?=## )", old)
    head, sections = chunks[0], chunks[1:]
    sections = [s for s in sections if not s.startswith(f"## {title}")]
    sections.append(text.strip("\n") + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in sections))


def publish(path: Path, title: str, text: str) -> int:
    """Write a benchmark's section and print it; the exit code of a benchmark that measured."""
    write_section(path, title, text)
    print(text)
    return 0
