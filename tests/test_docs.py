"""The documentation stays a front door plus docs/: links resolve inside the repository,
the README stays small, and docs/cli.md names exactly the subcommands the parser has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from silc_bench.cli.main import parser

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
CLI_DOC = REPO_ROOT / "docs" / "cli.md"
README_MAX_BYTES = 12_288
EXTERNAL = ("http://", "https://", "mailto:")

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
CLI_HEADING = re.compile(r"^## `silc-bench ([^`\s]+)`\s*$", re.MULTILINE)


def doc_files() -> list[Path]:
    return [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks or inline code, where `[x](y)` is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(path: Path) -> list[str]:
    return LINK.findall(_prose(path.read_text(encoding="utf-8")))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _relative(target: str) -> bool:
    return not target.lower().startswith(EXTERNAL)


def test_the_docs_exist() -> None:
    assert README.is_file()
    assert CLI_DOC.is_file()
    assert len(doc_files()) > 2


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    bad = []
    for target in filter(_relative, links(path)):
        file_part = target.split("#", 1)[0]
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(REPO_ROOT):
            bad.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            bad.append(f"{target} (no such file or folder)")
    assert not bad, f"{path.name}: {bad}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_anchor_names_a_heading(path: Path) -> None:
    bad = []
    for target in filter(_relative, links(path)):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if anchor and resolved.suffix == ".md" and resolved.is_file() and anchor not in anchors(resolved):
            bad.append(target)
    assert not bad, f"{path.name}: anchors that name no heading: {bad}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_nothing_points_at_shared(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert not [t for t in links(path) if "../shared" in t]


def test_readme_is_a_front_door() -> None:
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text
    assert "make test" in text


def parser_subcommands() -> set[str]:
    actions = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return set(actions[0].choices)


def test_cli_doc_names_every_subcommand_of_the_parser() -> None:
    documented = CLI_HEADING.findall(CLI_DOC.read_text(encoding="utf-8"))
    assert len(documented) == len(set(documented)), f"a subcommand is documented twice: {documented}"
    real = parser_subcommands()
    assert set(documented) == real, (
        f"missing from docs/cli.md: {sorted(real - set(documented))}; "
        f"not a subcommand: {sorted(set(documented) - real)}"
    )
