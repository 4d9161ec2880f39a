"""The paper's comparison tables, rebuilt from result files plus the registry."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from silc_bench.tables.build import COLUMNS, frame
from silc_bench.tables.paper import PAPER_TABLES, load_paper_table
from silc_bench.tables.render import csv, latex, markdown

FORMATS = ("markdown", "csv", "latex")


def render_tables(which: str, results_dir: Path | None, with_paper: bool, fmt: str) -> str:
    """`silc-bench table WHICH`: a missing or empty results folder shows the paper or "–"."""
    from silc_bench.check import load_results
    from silc_bench.config import load_models

    numbers = list(PAPER_TABLES) if which == "all" else [which]
    results, bad = [], []
    if results_dir is not None and Path(results_dir).exists() and any(Path(results_dir).rglob("*.json")):
        results, bad = load_results(Path(results_dir))
    models = load_models()
    frames = {n: frame(load_paper_table(n).cells(), results, models) for n in numbers}
    if fmt == "csv":
        return csv(pd.concat(frames.values(), ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS))
    render = markdown if fmt == "markdown" else latex
    out = [render(load_paper_table(n), frames[n], with_paper) for n in numbers]
    if bad:
        out.append("Left out (not valid results):\n\n" + "\n".join(f"- {b}" for b in bad) + "\n")
    return "\n".join(out)
