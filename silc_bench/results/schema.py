"""The result schema: one JSON file per (model, task, dataset[@profile]), written atomically.

Tables and regression checks are pure functions of these files, so a result records
everything that decides its number: checkpoint sha256, task version, protocol
(preprocessing included), seeds, precision, dataset fingerprint, package version and git
commit, environment and wall time.
"""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from silc_bench import __version__
from silc_bench.config import DEFAULT_PROFILE
from silc_bench.core.errors import UserError
from silc_bench.core.files import atomic_write_text, remove_stale_tmp
from silc_bench.core.paths import REPO_ROOT
from silc_bench.core.typed import Check, SchemaError, check_mapping

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)  # schema 1 had no run_key: such a result is read, never reused


def _interval_problem(raw: dict[str, Any]) -> str | None:
    lo, hi = raw["ci95"]
    return None if 0 <= lo <= hi <= 100 else f"ci95 {raw['ci95']} is not an interval within 0..100"


@dataclass
class MetricInterval:
    """A metric's percentile bootstrap over images (`run --bootstrap N`, metrics/uncertainty.py):
    the resamples and the seed that drew them, so the same interval can be drawn again."""

    bootstrap: Annotated[int, Check(min=2)]  # resamples
    seed: int
    ci95: tuple[float, float]  # points, the 2.5th and 97.5th percentiles of the resamples
    se: Annotated[float, Check(min=0)]  # points, the resamples' standard deviation
    validate = staticmethod(_interval_problem)


@dataclass
class Result:
    model: str
    variant: str | None
    checkpoint_sha256: str
    task: str
    task_version: Annotated[int, Check(min=0)]  # 0: a hand-made file; attribution refuses it
    dataset: str
    dataset_fingerprint: str
    protocol: dict[str, Any]
    metrics: dict[str, float]
    precision: str
    seeds: list[int] = field(default_factory=list)
    per_class: dict[str, float] | None = None
    # metric -> its spread (zs-seg `--bootstrap`: mIoU); written beside `metrics`, only when asked
    uncertainty: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={"each": MetricInterval})
    profile: str = DEFAULT_PROFILE
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    package_version: str = __version__
    git_commit: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    # Task options that change the number (zs-seg: dense_mode, pamr, tcl_ensemble), typed,
    # so tables and checks never read them from a file name.
    options: dict[str, Any] = field(default_factory=dict)
    # What the run was asked for, computed before any model is loaded: model identity
    # (weights sha256, registry settings), dataset fingerprint, task, profile, protocol,
    # options, precision and limit. A stored result is reused only on an exact match.
    run_key: dict[str, Any] = field(default_factory=dict)
    # Processes the run was sharded over (torchrun); the numbers do not depend on it.
    world_size: int = 1

    def to_json(self) -> str:
        d = asdict(self)
        spread = d.pop("uncertainty")
        d = {"schema_version": d.pop("schema_version"), **d}
        if d["per_class"] is None:
            del d["per_class"]
        if spread:  # written beside the numbers it qualifies; left out when not asked for
            items = list(d.items())
            at = list(d).index("metrics") + 1
            d = dict([*items[:at], ("uncertainty", spread), *items[at:]])
        return json.dumps(d, indent=2, sort_keys=False, allow_nan=False) + "\n"


def write_result(path: Path, result: Result) -> None:
    """Write atomically: a crash never leaves a partial or corrupt result file."""
    problem = _metrics_problem(result.metrics)
    if problem:
        raise ValueError(problem)
    text = result.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    remove_stale_tmp(path.parent, f".{path.name}")


_RANKED = re.compile(r"^(top|.*recall@)(\d+)$")  # top1 <= top5; recall@1 <= @5 <= @10


def _metrics_problem(metrics: Any) -> str | None:
    """Every metric of this suite is a percentage: finite, in 0..100, and top-k values
    never fall as k grows."""
    if not isinstance(metrics, dict):
        return f"metrics must be a mapping of names to numbers, not {type(metrics).__name__}"
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"metric {k!r} is not a finite number: {v!r}"
        if not 0 <= v <= 100:
            return f"metric {k!r} = {v!r} is not a percentage (0-100)"
    ranked: dict[str, list[tuple[int, float]]] = {}
    for k, v in metrics.items():
        m = _RANKED.match(k)
        if m:
            ranked.setdefault(m.group(1), []).append((int(m.group(2)), float(v)))
    for prefix, pairs in ranked.items():
        pairs.sort()
        for (k1, v1), (k2, v2) in zip(pairs, pairs[1:]):
            if v2 < v1:
                return f"metric {prefix}{k2} = {v2} is below {prefix}{k1} = {v1}"
    return None


def read_result(path: Path) -> Result:
    """A validated Result. Anything else (not JSON, not an object, a foreign schema, a
    missing or unknown field, a NaN or infinite metric) is a UserError naming the file."""

    def bad(why: str) -> UserError:
        return UserError(f"{path}: not a silc-bench result ({why})")

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UserError(f"cannot read result {path}: {e.strerror}") from None
    try:
        d = json.loads(text, parse_constant=lambda c: float(c))
    except ValueError as e:
        raise bad(f"invalid JSON: {e}") from None
    if not isinstance(d, dict):
        raise bad(f"a JSON {type(d).__name__}, expected an object")
    if d.get("schema_version") not in READABLE_SCHEMAS:
        raise bad(f"schema_version {d.get('schema_version')!r}, readable: {list(READABLE_SCHEMAS)}")
    try:  # every field of its type, none missing, none unknown (core/typed.py)
        check_mapping(d, Result, "")
    except SchemaError as e:
        raise bad(str(e)) from None
    problem = _metrics_problem(d["metrics"])
    stray = [k for k in d.get("uncertainty", {}) if k not in d["metrics"]]
    if problem or stray:
        raise bad(problem or f"uncertainty of {stray[0]!r}, which is not among its metrics")
    if d["schema_version"] == 1:  # no `options` field: recover what the protocol recorded
        p = d["protocol"]
        d["options"] = {
            "pamr": p.get("refinement") == "pamr",
            "tcl_ensemble": p.get("label_access") == "tuned",
        }
        d["options"] = {k: v for k, v in d["options"].items() if v}
    return Result(**d)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str) -> dict[str, Any]:
    import numpy
    import torch

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "open_clip": _versions("open_clip_torch").get("open_clip_torch"),  # not imported for it: seconds
        "numpy": numpy.__version__,
        **_versions("torchvision", "mmseg", "mmengine", "mmcv"),  # zs-seg parity is pinned to mmseg 1.2.2
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def _versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        dist = {"mmseg": "mmsegmentation", "mmcv": "mmcv-lite"}.get(name, name)
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
