"""Checks over result files (never over task internals).

`--zero-shot-only` is the protocol audit the SILC paper argues for: a zero-shot number
must come from the raw model, with no refinement (PAMR) and no constant fitted on
segmentation labels (TCL's 0.3 MaskCLIP mix). Also here: reading a results folder (every
bad file named) and `not_the_registry_run`, the one rule for when a result may stand for
its registry entry, which regression checks (regression.py) and tables share.
"""

from __future__ import annotations

from pathlib import Path

from silc_bench.config import ModelSpec
from silc_bench.core.errors import UserError
from silc_bench.results.schema import Result, read_result


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


def load_results(root: Path) -> tuple[list[tuple[Path, Result]], list[str]]:
    """(every valid result, one message per file that is not a valid result)."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"results folder not found: {root}")
    files = [root] if root.is_file() else sorted(root.rglob("*.json"))
    out, bad = [], []
    for f in files:
        if f.name.startswith("."):
            continue
        try:
            out.append((f, read_result(f)))
        except UserError as e:
            bad.append(str(e))
    if not out and not bad:
        raise UserError(f"no result files (*.json) under {root}")
    return out, bad


def partial_split(r: Result) -> str | None:
    """'scored N images, the published split has M' when a full run (no --limit) scored
    fewer images than the published split, else None. The fact is `protocol.partial_split`;
    result files written before it existed said so only in a note, which is still read."""
    found = r.protocol.get("partial_split")
    if isinstance(found, dict):
        return f"scored {found.get('scored')} images, the published split has {found.get('published'):,}"
    suffix = ": not comparable with published numbers"
    old = next((n for n in r.notes if n.endswith(suffix)), None)
    return old.removesuffix(suffix).split(": ", 1)[-1] if old else None


def not_the_registry_run(r: Result, spec: ModelSpec | None) -> str | None:
    """Why a result cannot stand for its registry entry's number, or None.

    A `--limit` smoke run, a run on fewer images than the published split, a run at bf16 or
    fp16 or with a fast-path option that may round differently (`--compile`,
    `--channels-last`, `--decode gpu`), and a registry name run with `--weights` (its files'
    sha256 are not the entry's) measure something else.
    """
    if r.protocol.get("limit") is not None:
        return f"--limit {r.protocol['limit']} (partial)"
    if partial_split(r) is not None:
        return "fewer images than the published split"
    if r.precision != "fp32":
        return f"precision {r.precision} (registry numbers are fp32)"
    if r.run_key.get("execution"):
        return "fast-path options " + ", ".join(f"{k}={v}" for k, v in sorted(r.run_key["execution"].items()))
    model = r.run_key.get("model") if isinstance(r.run_key.get("model"), dict) else {}
    if model.get("weights_override"):
        return "weights other than the registry's (--weights)"
    want = (spec.weights.get("sha256") if spec is not None else None) or []
    want = want if isinstance(want, list) else [want]
    model = r.run_key.get("model") if isinstance(r.run_key.get("model"), dict) else {}
    got = model.get("weights_sha256") or []
    if want and got and list(got)[: len(want)] != list(want):
        return "weights other than the registry's (--weights)"
    return None


def zero_shot_problems(results: list[tuple[Path, Result]]) -> list[str]:
    return [f"{path}: not raw zero-shot ({audit_note(r)})" for path, r in results if not is_raw_zero_shot(r)]
