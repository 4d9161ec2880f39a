"""The paper's numbers, in one place: `reports/paper/table{1,2,3}.yaml`.

Each file is the supplementary's table as data: the columns (task, dataset, metric, as
the suite names them), the rows (model and size as the paper prints them, variant, the
printed values, and Table 3's printed deltas), and every decision taken on the messy
extracted text, with its reason. `checkpoints.yaml` links an entry to its row with
`paper_row`; reference numbers are derived from here, never copied.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from silc_bench.config import ModelSpec, build, read_yaml
from silc_bench.core.errors import UserError
from silc_bench.core.paths import DATA_HOME

PAPER_DIR = DATA_HOME / "reports" / "paper"
PAPER_TABLES = ("1", "2", "3")


@dataclass(frozen=True)
class Column:
    task: str
    dataset: str
    metric: str
    header: str


@dataclass(frozen=True)
class Row:
    model: str
    size: str
    variant: str
    values: tuple[float, ...]
    printed_delta: tuple[float, ...] | None = None
    delta_against: str | None = None


@dataclass(frozen=True)
class Cell:
    """One printed number, named the suite's way."""

    table: str
    model: str
    size: str
    variant: str
    task: str
    dataset: str
    metric: str
    paper: float
    printed_delta: float | None = None
    against: float | None = None  # the value the printed delta is taken against


@dataclass
class PaperTable:
    table: str
    title: str
    caption: str
    columns: list[Column]
    rows: list[Row]
    footnotes: list[str] = field(default_factory=list)
    decisions: list[dict[str, str]] = field(default_factory=list)

    @property
    def sizes(self) -> list[str]:
        return list(dict.fromkeys(r.size for r in self.rows))

    def cells(self) -> list[Cell]:
        out = []
        for row in self.rows:
            against = next(
                (r for r in self.rows if r.size == row.size and r.model == row.delta_against), None
            )
            for i, col in enumerate(self.columns):
                delta = row.printed_delta[i] if row.printed_delta else None
                base = against.values[i] if against is not None and delta is not None else None
                out.append(
                    Cell(self.table, row.model, row.size, row.variant, col.task, col.dataset, col.metric,
                         row.values[i], delta, base)
                )  # fmt: skip
        return out


@dataclass
class _TableFile:
    table: int | str
    title: str
    columns: list[dict[str, str]]
    rows: list[dict[str, Any]]
    caption: str = ""
    footnotes: list[str] = field(default_factory=list)
    decisions: list[dict[str, str]] = field(default_factory=list)


@functools.cache
def load_paper_table(number: str) -> PaperTable:
    path = PAPER_DIR / f"table{number}.yaml"
    raw = build(_TableFile, read_yaml(path), str(path))
    columns = [build(Column, c, f"{path}: column") for c in raw.columns]
    rows = []
    for r in raw.rows:
        r = dict(r)
        for key in ("values", "printed_delta"):
            if r.get(key) is not None:
                r[key] = tuple(float(v) for v in r[key])
        row = build(Row, {"variant": "", **r}, f"{path}: row")
        if len(row.values) != len(columns) or (row.printed_delta and len(row.printed_delta) != len(columns)):
            raise UserError(
                f"{path}: row {row.model} {row.size} has {len(row.values)} values for {len(columns)} columns"
            )
        rows.append(row)
    return PaperTable(str(raw.table), raw.title, raw.caption, columns, rows, raw.footnotes, raw.decisions)


def paper_cells() -> list[Cell]:
    return [c for n in PAPER_TABLES for c in load_paper_table(n).cells()]


def paper_references(spec: ModelSpec, variant: str | None) -> dict[str, dict[str, float]]:
    """Reference numbers for a registry entry (and variant), keyed like `expected:`:
    the paper cells of its `paper_row`, then the entry's own `paper:` map."""
    out: dict[str, dict[str, float]] = {}
    row = spec.paper_row
    for c in paper_cells() if row else ():
        if (c.model, c.size) == (row.get("model"), row.get("size")) and c.variant in ("", variant or ""):
            out.setdefault(f"{c.task}/{c.dataset}", {})[c.metric] = c.paper
    for key, metrics in spec.paper.items():
        out.setdefault(key, {}).update(metrics)
    return out


def paper_path(number: str) -> Path:
    return PAPER_DIR / f"table{number}.yaml"
