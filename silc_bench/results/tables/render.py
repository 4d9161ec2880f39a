"""Tidy frames → markdown (tabulate), CSV (pandas) or LaTeX (booktabs), laid out as the paper.

Rows are the paper's rows (model and size as printed, grouped by size), columns its
columns. Without `--paper` a cell shows the measured value; with it, measured / paper
(Δ), or the paper alone when no result fills the table. A missing value is "–", never 0.
Bold marks the best and underline the second best of each column within a size group,
for whichever values are shown. Cells measured with a non-default setting carry a
numbered note.
"""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

from silc_bench.results.tables.build import delta_audit
from silc_bench.results.tables.paper import PaperTable


def _num(v: object) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _ranks(values: list[float | None]) -> list[int | None]:
    """1 for the best, 2 for the second best (ties share a rank), else None."""
    distinct = sorted({v for v in values if v is not None}, reverse=True)
    return [None if v is None else (distinct.index(v) + 1 if distinct.index(v) < 2 else None) for v in values]


def _cell_text(row: pd.Series, with_paper: bool, show_measured: bool) -> str:
    m, p, printed = _num(row["measured"]), _num(row["paper"]), _num(row["printed_delta"])
    if not show_measured:  # the paper alone
        return f"{p:.1f}" + (f" ({printed:+.1f})" if printed is not None else "")
    # an imported number is shown at the paper's one decimal: its source gave no more
    d = 1 if row.get("source") == "imported" else 2
    if not with_paper:
        return "–" if m is None else f"{m:.{d}f}"
    if m is None:
        return f"– / {p:.1f}"
    return f"{m:.{d}f} / {p:.1f} ({m - p:+.{d}f})"


def layout(
    t: PaperTable, df: pd.DataFrame, with_paper: bool, fmt: str
) -> tuple[list[str], list[list[str]], list[str]]:
    """(headers, rows, notes) of one table, cells marked for `fmt` (markdown or latex)."""
    show_measured = df["measured"].notna().any() or not with_paper
    bold = ("**{}**", "<u>{}</u>") if fmt == "markdown" else (r"\textbf{{{}}}", r"\underline{{{}}}")
    notes: list[str] = []
    grid: dict[tuple, str] = {}
    for size in t.sizes:
        part = df[df["size"] == size]
        for col in t.columns:
            cells = part[
                (part["task"] == col.task) & (part["dataset"] == col.dataset) & (part["metric"] == col.metric)
            ]
            if show_measured:  # rank the values as shown; a marked cell is not a clean competitor
                shown = [
                    None if _num(r["measured"]) is None or r["note"] else round(_num(r["measured"]), 2)
                    for _, r in cells.iterrows()
                ]
                if sum(v is not None for v in shown) < 2:
                    shown = [None] * len(shown)  # one measured value is not "the best"
            else:
                shown = [round(_num(r["paper"]), 1) for _, r in cells.iterrows()]
            for (_, r), rank in zip(cells.iterrows(), _ranks(shown)):
                text = _cell_text(r, with_paper, show_measured)
                if rank is not None:
                    text = bold[rank - 1].format(text)
                if r["note"]:
                    notes.append(f"{r['model']} {r['size']} {r['dataset']} {r['metric']}: {r['note']}")
                    text += f" [{len(notes)}]"
                if r.get("info"):  # shared by many cells: numbered once, the cells keep their rank
                    about = f"{r['model']} {r['size']}: {r['info']}"
                    if about not in notes:
                        notes.append(about)
                    text += f" [{notes.index(about) + 1}]"
                grid[(r["model"], r["size"], r["variant"], col.header)] = text
    headers = ["size", "model", *(c.header for c in t.columns)]
    rows = []
    for row in t.rows:
        name = row.model + (f" ({row.variant})" if t.table == "2" and row.variant else "")
        rows.append(
            [
                row.size,
                name,
                *(grid.get((row.model, row.size, row.variant, c.header), "–") for c in t.columns),
            ]
        )
    return headers, rows, notes


def markdown(t: PaperTable, df: pd.DataFrame, with_paper: bool) -> str:
    headers, rows, notes = layout(t, df, with_paper, "markdown")
    parts = [f"### Table {t.table}: {t.title}", "", t.caption.strip(), ""]
    parts.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    if with_paper and df["measured"].notna().any():
        parts += ["", "Cells read measured / paper (Δ = measured − paper)."]
    for f in t.footnotes:
        parts += ["", f"Note: {f.strip()}"]
    parts += [""] + [f"[{i}] {n}" for i, n in enumerate(notes, 1)] if notes else []
    audit = delta_audit(t.cells(), {c.dataset: c.header for c in t.columns})
    if audit:
        parts += ["", "Printed deltas that the printed values do not give:", ""] + [f"- {a}" for a in audit]
    return "\n".join(parts).rstrip() + "\n"


def latex(t: PaperTable, df: pd.DataFrame, with_paper: bool) -> str:
    headers, rows, notes = layout(t, df, with_paper, "latex")

    def esc(s: str) -> str:
        return s.replace("%", r"\%").replace("&", r"\&").replace("_", r"\_").replace("#", r"\#")

    lines = [
        r"\begin{table}[t]",
        r"\centering",
        f"\\caption{{{esc(t.title)}}}",
        r"\begin{tabular}{ll" + "r" * len(t.columns) + "}",
        r"\toprule",
        " & ".join(esc(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    last = None
    for r in rows:
        if last is not None and r[0] != last:
            lines.append(r"\midrule")
        last = r[0]
        lines.append(" & ".join([esc(r[0]), esc(r[1]), *(c.replace("–", "--") for c in r[2:])]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% [{i}] {n}" for i, n in enumerate(notes, 1)]
    lines += [f"% Note: {' '.join(f.split())}" for f in t.footnotes]
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


def csv(df: pd.DataFrame) -> str:
    """Tidy long form: the header and one line per cell, plain numbers."""
    return df.to_csv(index=False, lineterminator="\n", float_format="%g")
