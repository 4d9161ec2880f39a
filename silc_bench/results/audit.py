"""Checks over result files (never over task internals).

`--zero-shot-only` is the protocol audit the SILC paper argues for: a zero-shot number
must come from the raw model, with no refinement (PAMR) and no constant fitted on
segmentation labels (TCL's 0.3 MaskCLIP mix). Also here: reading a results folder (every
bad file named) and `not_the_registry_run`, the one rule for when a result may stand for
its registry entry, which regression checks (regression.py) and tables share.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from silc_bench.config import ModelSpec, load_task, task_version
from silc_bench.core.errors import UserError
from silc_bench.core.hashing import hash_obj
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
    """Why a result cannot stand for its registry entry's number, or None: the one rule
    `check --regression` and every table share, decided from the result's own fields.

    It must record how it was asked for (a run key; imported numbers excepted), be a full
    run (no `--limit`, anywhere it is recorded; the published split's image count), at the
    task's current version, at fp32 with no fast-path option that may round differently,
    of a variant the entry has, and of the entry's own checkpoint: its `checkpoint_sha256`
    and every weight file's sha256 must be the entry's where the entry pins them, and a run
    with `--weights` never stands for it.
    """
    imported = r.env.get("source") == "imported"
    if not r.run_key and not imported:
        return "it records no run key (written by an older silc-bench)"
    limit = r.protocol.get("limit") if r.protocol.get("limit") is not None else r.run_key.get("limit")
    if limit is not None:
        return f"--limit {limit} (partial)"
    if partial_split(r) is not None or _short_of_the_split(r):
        return "fewer images than the published split"
    contradiction = _contradicts_its_run_key(r)
    if contradiction:
        return contradiction
    current = _task_version(r.task)
    if current is not None and r.task_version != current:
        return f"task version {r.task_version} (the task is at version {current})"
    if r.precision != "fp32" and not imported:  # an imported row's precision is not ours to know
        return f"precision {r.precision} (registry numbers are fp32)"
    if r.run_key.get("execution"):
        return "fast-path options " + ", ".join(f"{k}={v}" for k, v in sorted(r.run_key["execution"].items()))
    if spec is not None and r.variant and r.variant not in spec.variants:
        return f"variant {r.variant!r}, which registry entry {spec.name!r} does not have"
    model = r.run_key.get("model") if isinstance(r.run_key.get("model"), dict) else {}
    if model.get("weights_override"):
        return "weights other than the registry's (--weights)"
    changed = _entry_changed(spec, model)
    if changed:
        return changed
    return _other_checkpoint(r, spec, model)


# the entry's settings a run key records (models/resolve.py model_identity)
_SPEC_KEYS = ("arch", "backend", "preprocess", "tokenizer", "dense_mode")


def _entry_changed(spec: ModelSpec | None, model: dict) -> str | None:
    """A run of the entry as it was then stands only for the entry as it is now: settings
    that decide the number (preprocessing, tokenizer, architecture, a random init's seed)
    must still be the registry's."""
    if spec is None or not model or "converted" in spec.arch:  # converted: the file's own record
        return None
    recorded = model.get("spec")
    if isinstance(recorded, dict):
        now = json.loads(json.dumps({k: getattr(spec, k) for k in _SPEC_KEYS}))
        differ = [k for k in _SPEC_KEYS if k in recorded and recorded[k] != now[k]]
        if differ:
            return f"registry entry {spec.name!r} changed since this run ({', '.join(differ)})"
    seed = spec.weights.get("random_init_seed")
    if "random_init_seed" in model and model["random_init_seed"] != seed:
        return f"random_init_seed {model['random_init_seed']} (the entry's is {seed})"
    return None


def _contradicts_its_run_key(r: Result) -> str | None:
    """The run key says how the result was asked for; a file whose fields say otherwise
    (edited, or stitched from two runs) stands for nothing."""
    key = r.run_key
    model = key.get("model") if isinstance(key.get("model"), dict) else {}
    pairs = (
        ("precision", r.precision, key.get("precision")),
        ("task_version", r.task_version, key.get("task_version")),
        ("variant", r.variant, model.get("variant", r.variant)),
    )
    for name, field_value, keyed in pairs:
        if name in key or name == "variant":
            if keyed != field_value:
                return f"its {name} is {field_value!r} but its run key says {keyed!r}"
    if "dataset_fingerprint" in key and key["dataset_fingerprint"] != r.dataset_fingerprint:
        return "its dataset_fingerprint is not the one its run key was asked for"
    spec = _task_spec(r.task, r.dataset)
    if spec is not None and "data" in key and key["data"] != spec.data:
        return f"its data {key['data']} are not the dataset's ({spec.data})"
    return None


def _other_checkpoint(r: Result, spec: ModelSpec | None, model: dict) -> str | None:
    """The entry's pinned sha256 against both the result's checkpoint and its weight files."""
    want = (spec.weights.get("sha256") if spec is not None else None) or []
    want = want if isinstance(want, list) else [want]
    if not want:
        return None
    got = model.get("weights_sha256") or []
    extra = 1 if spec is not None and spec.weights.get("masker") else 0  # TCL's masker file, listed after
    if got and (list(got)[: len(want)] != list(want) or len(got) != len(want) + extra):
        return "weights other than the registry's (--weights)"
    combined = want[0] if len(want) == 1 else hash_obj(want)
    if r.checkpoint_sha256 != combined:  # an imported row's sha256 is checked like any other
        return f"checkpoint {r.checkpoint_sha256[:12]}… is not the registry entry's ({combined[:12]}…)"
    return None


@functools.cache
def _task_spec(task: str, dataset: str):  # noqa: ANN202
    try:
        return load_task(task, dataset)
    except UserError:  # a task or dataset this suite does not run (ov-seg, imported)
        return None


@functools.cache
def _task_version(task: str) -> int | None:
    try:
        return task_version(task)
    except UserError:
        return None


def _short_of_the_split(r: Result) -> bool:
    """A full run that scored other than the published split's image count, whether or not
    the result says so (a hand-made or old file may not)."""
    spec = _task_spec(r.task, r.dataset)
    n = r.protocol.get("num_images")
    return spec is not None and bool(spec.standard_images) and n is not None and n != spec.standard_images


def zero_shot_problems(results: list[tuple[Path, Result]]) -> list[str]:
    return [f"{path}: not raw zero-shot ({audit_note(r)})" for path, r in results if not is_raw_zero_shot(r)]
