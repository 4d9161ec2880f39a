"""The paper's comparison tables, rebuilt from result files plus the registry."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from silc_bench.core.console import warn
from silc_bench.core.errors import UserError
from silc_bench.results.tables.build import COLUMNS, frame
from silc_bench.results.tables.paper import PAPER_TABLES, load_paper_table
from silc_bench.results.tables.render import csv, latex, markdown

FORMATS = ("markdown", "csv", "latex")


def render_tables(which: str, results_dir: Path | None, with_paper: bool, fmt: str) -> str:
    """`silc-bench table WHICH`: a missing or empty results folder shows the paper or "–".

    A format or `--paper` a table cannot honour is refused in one line, never ignored: the
    ShapesWorld report and Table 4 have no paper numbers, and no LaTeX form."""
    if with_paper and which in ("4", "shapes"):
        raise UserError(f"--paper: table {which} has no paper numbers to compare with")
    if fmt == "latex" and which in ("4", "shapes"):
        raise UserError(f"table {which} has markdown and csv forms only")
    from silc_bench.config import load_models
    from silc_bench.results.audit import load_results

    results, bad = [], []
    where = Path(results_dir) if results_dir is not None else None
    if where is not None and (where.is_file() or (where.is_dir() and any(where.rglob("*.json")))):
        results, bad = load_results(Path(results_dir))
    if which == "shapes":
        from silc_bench.results.tables import shapes

        return shapes.csv_text(results) if fmt == "csv" else shapes.markdown(results, results_dir=where)
    from silc_bench.results.tables import table4

    numbers = [n for n in (*PAPER_TABLES, "4") if which in (n, "all")]
    models = load_models()
    frames = {n: frame(load_paper_table(n).cells(), results, models) for n in numbers if n != "4"}
    if "4" in numbers:
        frames["4"] = table4.frame(results)
    for b in bad:  # named on stderr whatever the format, so csv and latex never drop a file silently
        warn(f"left out, not a valid result: {b}")
    if fmt == "csv":
        return csv(pd.concat(frames.values(), ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS))
    if fmt == "latex":
        if "4" in numbers:
            warn("table 4 has no LaTeX form: left out of `table all --format latex` (use markdown or csv)")
        return "\n".join(latex(load_paper_table(n), frames[n], with_paper) for n in numbers if n != "4")
    out = [
        table4.markdown(results) if n == "4" else markdown(load_paper_table(n), frames[n], with_paper)
        for n in numbers
    ]
    if bad:
        out.append("Left out (not valid results):\n\n" + "\n".join(f"- {b}" for b in bad) + "\n")
    return "\n".join(out)
