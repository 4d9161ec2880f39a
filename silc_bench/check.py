"""Checks over result files (never over task internals).

`--zero-shot-only` is the protocol audit the SILC paper argues for: a zero-shot number
must come from the raw model, with no refinement (PAMR) and no constant fitted on
segmentation labels (TCL's 0.3 MaskCLIP mix). Regression checks against
checkpoints.yaml's expected numbers plug in here too.
"""

from __future__ import annotations

from pathlib import Path

from silc_bench.errors import UserError
from silc_bench.results import Result, read_result


def is_raw_zero_shot(r: Result) -> bool:
    p = r.protocol
    return p.get("refinement", "none") == "none" and p.get("label_access", "none") == "none"


def audit_note(r: Result) -> str:
    p = r.protocol
    parts = []
    if p.get("refinement", "none") != "none":
        parts.append(f"refinement={p['refinement']}")
    if p.get("label_access", "none") != "none":
        parts.append(f"label_access={p['label_access']}")
    return ", ".join(parts)


def load_results(root: Path) -> list[tuple[Path, Result]]:
    root = Path(root)
    if not root.exists():
        raise UserError(f"results folder not found: {root}")
    files = [root] if root.is_file() else sorted(root.rglob("*.json"))
    out = []
    for f in files:
        if f.name.startswith("."):
            continue
        out.append((f, read_result(f)))
    if not out:
        raise UserError(f"no result files (*.json) under {root}")
    return out


def zero_shot_problems(results: list[tuple[Path, Result]]) -> list[str]:
    return [f"{path}: not raw zero-shot ({audit_note(r)})" for path, r in results if not is_raw_zero_shot(r)]
