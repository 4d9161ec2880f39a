"""reports/perf.md: each benchmark replaces its own section, in place, by its whole heading."""

from __future__ import annotations

import pytest

from silc_bench.bench.report import write_section


def test_a_section_is_replaced_in_place_by_its_whole_heading(tmp_path):
    path = tmp_path / "perf.md"
    path.write_text(
        "# Performance\n\n## Sliding-window\n\nold\n\n## Sliding-window memory at 2x1\n\nm\n\n## Z\n\nz\n"
    )
    write_section(path, "## Sliding-window\n\nnew\n")  # a prefix of another heading
    write_section(path, "## Added\n\na\n")
    text = path.read_text()
    assert (
        text.index("new")
        < text.index("## Sliding-window memory")
        < text.index("## Z")
        < text.index("## Added")
    )
    assert "old" not in text and "\nm\n" in text  # the longer heading's section is untouched
    with pytest.raises(ValueError):
        write_section(path, "no heading\n")


def test_a_renamed_benchmark_replaces_its_old_section_in_its_place(tmp_path):
    path = tmp_path / "perf.md"
    path.write_text("# Performance\n\n## A\n\na\n\n## Old name\n\nold\n\n## Z\n\nz\n")
    write_section(path, "## New name\n\nnew\n", replaces=("## Old name",))
    text = path.read_text()
    assert "old" not in text and "## Old name" not in text
    assert text.index("## A") < text.index("## New name") < text.index("## Z")
    write_section(path, "## New name\n\nnewer\n", replaces=("## Old name",))  # again: in place
    assert path.read_text().count("## New name") == 1 and "newer" in path.read_text()
