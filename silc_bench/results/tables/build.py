"""Paper cells + result files → one tidy frame (one line per cell). Never loads a model.

A result fills a cell when its registry entry's `paper_row` is the cell's (model, size),
its variant is the cell's, and its task, dataset and metric match. A result run with the
default profile, no number-changing option and no `--limit` is preferred; otherwise the
cell is filled and marked. Two candidates of different task versions or profiles are
never mixed silently: the newest clean one is used and the others named in a note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from silc_bench.config import ModelSpec, task_default_profile
from silc_bench.results.audit import is_raw_zero_shot, not_the_registry_run
from silc_bench.results.key import ResultKey, option_tags
from silc_bench.results.schema import Result
from silc_bench.results.tables.paper import Cell

COLUMNS = [
    "table", "model", "size", "variant", "task", "dataset", "metric",
    "paper", "measured", "delta", "printed_delta", "result", "note", "info", "source",
]  # fmt: skip
# note: why a cell is not a clean default run (it is then not ranked); info: what a reader
# should know that does not make it less comparable (where it came from, which checkpoint);
# source: "imported" for numbers measured outside silc-bench (shown at the paper's decimals)


@dataclass
class Candidate:
    path: Path
    result: Result
    marks: list[str]  # why it is not a clean default run (empty: clean)


def _default_profile(task: str) -> str:
    try:
        return task_default_profile(task)
    except Exception:  # a task the suite does not run (ov-seg, imported)
        return "default"


def imported(r: Result) -> bool:
    return r.env.get("source") == "imported"


def _marks(r: Result, spec: ModelSpec | None) -> list[str]:
    if imported(r):  # measured elsewhere: its own fields say nothing of profile or options
        other = not_the_registry_run(r, spec)
        return [other] if other else []
    key = ResultKey.from_result(r, _default_profile(r.task))
    marks = []
    if key.profile != key.default_profile:
        marks.append(f"profile {key.profile}")
    marks += [f"option {t}" for t in option_tags(r.options)]  # limit, precision: `other` below
    other = not_the_registry_run(r, spec)
    if other:
        marks.append(other)
    if not is_raw_zero_shot(r):
        marks.append("not raw zero-shot")
    return marks


def candidates(
    results: list[tuple[Path, Result]], models: dict[str, ModelSpec]
) -> dict[tuple, list[Candidate]]:
    """(model, size, variant, task, dataset) → the results that could fill those cells."""
    out: dict[tuple, list[Candidate]] = {}
    for path, r in results:
        spec = models.get(r.model.partition(":")[0])
        if spec is None or not spec.paper_row:
            continue
        row = spec.paper_row
        key = (row.get("model"), row.get("size"), r.variant or "", r.task, r.dataset)
        out.setdefault(key, []).append(Candidate(path, r, _marks(r, spec)))
    return out


def _pick(found: list[Candidate]) -> tuple[Candidate, list[str]]:
    """The clean, newest result (highest task version, then latest); notes on the rest."""
    ranked = sorted(found, key=lambda c: (not c.marks, c.result.task_version, c.result.created), reverse=True)
    best, rest = ranked[0], ranked[1:]
    return best, [f"left out {c.path} ({'; '.join(c.marks) or 'older or duplicate'})" for c in rest]


def first_checkpoints(results: list[tuple[Path, Result]], models: dict[str, ModelSpec]) -> dict[str, str]:
    """Registry entry → the checkpoint sha256 its earliest result in the folder was measured
    with, for entries that pin no sha256 (every paper row: the released files are not ours to
    pin). That first checkpoint is what the folder's numbers for the entry stand for; a result
    from other weights is then named, never mixed into the entry's row unmarked."""
    first: dict[str, tuple[str, str]] = {}
    for _, r in results:
        entry = r.model.partition(":")[0]
        spec = models.get(entry)
        if spec is None or spec.weights.get("sha256") or not r.checkpoint_sha256:
            continue
        if entry not in first or r.created < first[entry][0]:
            first[entry] = (r.created, r.checkpoint_sha256)
    return {entry: sha for entry, (_, sha) in first.items()}


def origin(r: Result, entry: str, first: dict[str, str]) -> tuple[str | None, str | None]:
    """(mark, info) for where a cell's number comes from: imported, or which checkpoint of
    an entry that pins none."""
    info = None
    if imported(r):
        name, method = Path(str(r.protocol.get("file", "?"))).name, r.protocol.get("method", "?")
        info = f"imported from {name} ({method}, measured outside silc-bench)"
    pinned = first.get(entry)
    if pinned is None:
        return None, info
    sha = r.checkpoint_sha256
    if sha != pinned:
        return f"checkpoint {sha[:12]}…, not {pinned[:12]}… that {entry} was first measured with here", info
    about = f"{entry}: checkpoint {sha[:12]}… (the registry pins no sha256; the one first measured here)"
    return None, "; ".join(i for i in (info, about) if i)


def frame(
    cells: list[Cell], results: list[tuple[Path, Result]], models: dict[str, ModelSpec]
) -> pd.DataFrame:
    found = candidates(results, models)
    first = first_checkpoints(results, models)
    rows = []
    for c in cells:
        measured, result, notes, info, source = None, "", [], None, ""
        pool = found.get((c.model, c.size, c.variant, c.task, c.dataset), [])
        pool = [p for p in pool if c.metric in p.result.metrics]
        if pool:
            best, notes = _pick(pool)
            measured = float(best.result.metrics[c.metric])
            result = str(best.path)
            mark, info = origin(best.result, best.result.model.partition(":")[0], first)
            marks = [*best.marks, *([mark] if mark else [])]
            notes = [*(f"measured with {m}" for m in marks), *notes]
            source = "imported" if imported(best.result) else "measured"
        delta = round(measured - c.paper, 2) if measured is not None else None
        rows.append(
            [c.table, c.model, c.size, c.variant, c.task, c.dataset, c.metric, c.paper, measured, delta,
             c.printed_delta, result, "; ".join(notes), info or "", source]
        )  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def newest_registry_runs(
    results: list[tuple[Path, Result]], key: Callable[[Result], tuple | None], left_out: list[str]
) -> dict[tuple, tuple[Path, Result]]:
    """key(result) → the newest result that stands for its registry entry (default profile,
    full split, the registry's weights, no --limit). Every other one is named in `left_out`,
    with why; `key` returning None skips a result silently (another table's)."""
    from silc_bench.config import load_models

    models = load_models()
    out: dict[tuple, tuple[Path, Result]] = {}
    for path, r in sorted(results, key=lambda pr: pr[1].created):  # newer ones win
        k = key(r)
        if k is None:
            continue
        why = not_the_registry_run(r, models.get(r.model.partition(":")[0]))
        if why is None and r.profile != _default_profile(r.task):
            why = f"profile {r.profile}"
        if why is not None:
            left_out.append(f"{path} ({why})")
            continue
        if k in out:
            left_out.append(f"{out[k][0]} (an older result of the same run)")
        out[k] = (path, r)
    return out


def delta_audit(cells: list[Cell], names: dict[str, str] | None = None) -> list[str]:
    """Printed deltas that the printed values do not give (the paper's own arithmetic).
    `names`: dataset → the column header the paper prints."""
    out = []
    for c in cells:
        if c.printed_delta is None or c.against is None:
            continue
        recomputed = round(c.paper - c.against, 2)
        if abs(recomputed - c.printed_delta) > 0.05:
            where = (names or {}).get(c.dataset, c.dataset)
            out.append(
                f"{c.model} {c.size}, {where}: printed {c.printed_delta:+.1f}, but "
                f"{c.paper:.1f} − {c.against:.1f} = {recomputed:+.1f}"
            )
    return out
