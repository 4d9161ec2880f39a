"""`silc-bench table results`: every result in a folder as models × task/dataset/metric.

What `clip_benchmark build` and lm-eval's final table give their users, for your own
models: one row per model (variant and weights included), one column per headline metric
of each (task, dataset[@profile][+options]), with the same marks as the run summary (†
not raw zero-shot, ‡ part of a split) and each note written under the table.

`--stderr` adds each accuracy's and recall's binomial standard error, in points: the
spread a second draw of the same number of test images would show (lm-eval's stderr
column). mIoU has no binomial form: it shows its bootstrap interval over images, `[lo, hi]`,
where the run was asked for one (`run --bootstrap N`). Other metrics (mean per-class
recall, mAcc, aAcc) get none.
"""

from __future__ import annotations

from pathlib import Path

from silc_bench.metrics.uncertainty import binomial_se
from silc_bench.results.schema import Result

_BINOMIAL_PREFIXES = ("top", "i2t_", "t2i_")


def binomial_count(r: Result, metric: str) -> int | None:
    """The number of queries a binomial metric averages over (None: not a binomial metric)."""
    p = r.protocol
    if r.task == "retrieval" and metric.startswith("t2i_"):
        n = p.get("num_captions")
    elif metric.startswith(_BINOMIAL_PREFIXES) or (
        r.task == "fs-cls" and "shot_top" in metric and "_seed" not in metric
    ):
        n = p.get("num_images")
    else:
        return None
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else None


def binomial_stderr(r: Result, metric: str, at: float | None = None) -> float | None:
    """sqrt(p(1-p)/n) in points, n the number of queries the metric averages over and p
    the measured value, or `at` (a regression check's expected number)."""
    n, value = binomial_count(r, metric), r.metrics.get(metric) if at is None else at
    return None if n is None or value is None else binomial_se(value, n)


def standard_error(r: Result, metric: str, at: float | None = None) -> tuple[float, str] | None:
    """(se in points, where it comes from) for any metric that has one: binomial for an
    accuracy or recall, the recorded bootstrap's for mIoU; None for the others."""
    interval = r.uncertainty.get(metric)
    if interval is not None:
        return float(interval["se"]), "bootstrap"
    se = binomial_stderr(r, metric, at)
    return None if se is None else (se, "binomial")


def _column(r: Result, default_profile: str, metric: str) -> str:
    from silc_bench.results.key import ResultKey

    key = ResultKey.from_result(r, default_profile)
    return f"{r.task}/{key.display_dataset()}{''.join(f' +{t}' for t in key.tags)}/{metric}"


def _row_name(path: Path, r: Result) -> str:
    variant = f":{r.variant}" if r.variant and ":" not in r.model else ""
    weights = "".join(f" {part}" for part in path.stem.split("+")[1:] if part.startswith("weights-"))
    return f"{r.model}{variant}{weights}"


def grid(
    results: list[tuple[Path, Result]], with_stderr: bool
) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes): rows sorted by model, columns in first-seen order."""
    from silc_bench.config import task_default_profile
    from silc_bench.results.audit import audit_note, is_raw_zero_shot, partial_split
    from silc_bench.results.summary import headline_metrics, left_out_metrics

    cells: dict[str, dict[str, str]] = {}
    columns: list[str] = []
    notes: list[str] = []
    # One model row holds one checkpoint: a model name whose results in this folder came
    # from several (an entry that pins no sha256, its file replaced between runs) gets a
    # row per checkpoint, named by its first hex digits, never one mixed row.
    shas: dict[str, set[str]] = {}
    for path, r in results:
        shas.setdefault(_row_name(path, r), set()).add(r.checkpoint_sha256)
    # Two results of one row and column (copies of a folder, say): the newest is shown and
    # the other named, never one silently hiding the other.
    newest: dict[tuple, tuple[Path, Result]] = {}
    for path, r in sorted(results, key=lambda pr: pr[1].created):
        row = _row_name(path, r)
        if len(shas[row]) > 1:
            row += f" @{r.checkpoint_sha256[:8]}"
        at = (row, _column(r, task_default_profile(r.task), ""))
        if at in newest:
            notes.append(f"left out {newest[at][0]} (an older result of {row} {at[1].rstrip('/')})")
        newest[at] = (path, r)
    for (row, _), (_path, r) in newest.items():
        default = task_default_profile(r.task)
        mark = ""
        if not is_raw_zero_shot(r):
            mark += "†"
            notes.append(f"† {row} {r.task}/{r.dataset}: not raw zero-shot ({audit_note(r)})")
        why = partial_split(r) or (f"--limit {r.protocol['limit']}" if r.protocol.get("limit") else None)
        if why:
            mark += "‡"
            notes.append(f"‡ {row} {r.task}/{r.dataset}: {why}: not comparable with published numbers")
        for metric, value in headline_metrics(r).items():
            col = _column(r, default, metric)
            if col not in columns:
                columns.append(col)
            text = f"{value:.2f}"
            se = binomial_stderr(r, metric) if with_stderr else None
            interval = r.uncertainty.get(metric) if with_stderr else None
            if se is not None:
                text += f" ± {se:.2f}"
            elif interval is not None:
                lo, hi = interval["ci95"]
                text += f" [{lo:.2f}, {hi:.2f}]"
            cells.setdefault(row, {})[col] = text + (f" {mark}" if mark else "")
        for metric, why in left_out_metrics(r).items():
            col = _column(r, default, metric)
            if col not in columns:
                columns.append(col)
            cells.setdefault(row, {})[col] = "–"
            notes.append(f"– {row} {col}: {why}")
    rows = [[name, *(cells[name].get(c, "–") for c in columns)] for name in sorted(cells)]
    return ["model", *columns], rows, notes


def render(results: list[tuple[Path, Result]], fmt: str, with_stderr: bool, where: Path) -> str:
    from silc_bench.core.errors import UserError

    if not results:
        raise UserError(f"no result files under {where}")
    header, rows, notes = grid(results, with_stderr)
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "latex":
        return _latex(header, rows, notes)
    from tabulate import tabulate

    text = tabulate(rows, headers=header, tablefmt="github", disable_numparse=True)
    note = "\n".join(notes)
    se = (
        "\n\n± is the binomial standard error, in points; [lo, hi] the 95% percentile bootstrap "
        "interval over images (`run --bootstrap N`; its resamples and seed are in the result)."
        if with_stderr
        else ""
    )
    return f"{text}\n" + (f"\n{note}\n" if note else "") + (se + "\n" if se else "")


def _latex(header: list[str], rows: list[list[str]], notes: list[str]) -> str:
    def esc(text: str) -> str:
        out = text
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                     ("±", r"$\pm$"), ("†", r"$^\dagger$"), ("‡", r"$^\ddagger$"), ("–", "--")):  # fmt: skip
            out = out.replace(a, b)
        return out

    lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule"]
    lines.append(" & ".join(esc(h) for h in header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(esc(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {n}" for n in notes]
    return "\n".join(lines) + "\n"
