"""Markdown summaries built from Result objects only (never from task internals)."""

from __future__ import annotations

from collections.abc import Iterable

from tabulate import tabulate

from silc_bench.config import task_default_profile
from silc_bench.results.key import ResultKey
from silc_bench.results.schema import Result


def headline_metrics(r: Result) -> dict[str, float]:
    """The metrics a summary shows: everything except per-seed breakdowns."""
    return {k: v for k, v in r.metrics.items() if "_seed" not in k}


def left_out_metrics(r: Result) -> dict[str, str]:
    """Headline metrics the protocol asked for but the data could not give, with why: a
    k-shot probe on a pool with fewer than k images of some class is left out, and shown
    as "–" with this reason rather than as a smaller probe under a larger name."""
    p = r.protocol
    if r.task != "fs-cls" or not p.get("shots_left_out"):
        return {}
    why = f"left out: the smallest class has {p.get('min_train_per_class')} training images"
    return {f"{k}shot_top1": why for k in p["shots_left_out"]}


def chance_note(r: Result) -> str:
    """The uniform-guess level of the headline accuracy or recall. Segmentation has no
    such single figure (a uniform guess's mIoU depends on the class frequencies), so its
    cell stays empty rather than showing 1/C beside an mIoU."""
    p = r.protocol
    if r.task == "zs-seg":
        return ""
    if r.task == "retrieval" and p.get("num_images"):
        return f"{100.0 / p['num_images']:.2f}"
    if p.get("num_classes"):
        return f"{100.0 / p['num_classes']:.2f}"
    return ""


def markdown_table(results: Iterable[Result]) -> str:
    """One row per result. Rows that are not raw zero-shot are marked †, and rows measured
    on part of a dataset (`--limit`, or fewer images than the published split) ‡, each
    with a footnote: a smoke number must never read like a real one."""
    from silc_bench.results.audit import audit_note, is_raw_zero_shot, partial_split

    rows = []
    notes: list[str] = []
    metrics: list[str] = []
    results = list(results)
    defaults = {t: task_default_profile(t) for t in {r.task for r in results}}
    for r in results:
        for k in [*headline_metrics(r), *left_out_metrics(r)]:
            if k not in metrics:
                metrics.append(k)
    for r in results:
        m = headline_metrics(r)
        variant = f" ({r.variant})" if r.variant and ":" not in r.model else ""
        rkey = ResultKey.from_result(r, defaults[r.task])
        ds = rkey.display_dataset() + "".join(f" +{t}" for t in rkey.tags)
        name = ds
        if not is_raw_zero_shot(r):
            ds += " †"
            notes.append(f"† {r.model} {r.task}/{name}: not raw zero-shot ({audit_note(r)})")
        why = partial_split(r)
        partial = [f"{r.dataset}: {why}: not comparable with published numbers"] if why else []
        if r.protocol.get("limit") is not None:
            partial.insert(0, f"--limit {r.protocol['limit']}: the first images only (a smoke run)")
        if partial:
            ds += " ‡"
            notes.append(f"‡ {r.model} {r.task}/{name}: {partial[0]}")
        gone = left_out_metrics(r)
        for k, why in gone.items():
            notes.append(f"– {r.model} {r.task}/{name} {k}: {why}")
        rows.append(
            [r.model + variant, r.task, ds, chance_note(r)]
            + [f"{m[k]:.2f}" if k in m else ("–" if k in gone else "") for k in metrics]
        )
    headers = ["model", "task", "dataset", "chance", *metrics]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    return table + ("\n\n" + "\n".join(notes) if notes else "")
