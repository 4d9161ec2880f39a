"""The result schema: one JSON file per (model, task, dataset[@profile]), written atomically.

Tables and regression checks are pure functions of these files, so a result records
everything that decides its number: checkpoint sha256, task version, protocol
(preprocessing included), seeds, precision, dataset fingerprint, package version and git
commit, environment and wall time.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from silc_bench import __version__
from silc_bench.config import DEFAULT_PROFILE, REPO_ROOT
from silc_bench.errors import UserError

SCHEMA_VERSION = 1


@dataclass
class Result:
    model: str
    variant: str | None
    checkpoint_sha256: str
    task: str
    task_version: int
    dataset: str
    dataset_fingerprint: str
    protocol: dict[str, Any]
    metrics: dict[str, float]
    precision: str
    seeds: list[int] = field(default_factory=list)
    per_class: dict[str, float] | None = None
    profile: str = DEFAULT_PROFILE
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    package_version: str = __version__
    git_commit: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def to_json(self) -> str:
        d = asdict(self)
        d = {"schema_version": d.pop("schema_version"), **d}
        if d["per_class"] is None:
            del d["per_class"]
        return json.dumps(d, indent=2, sort_keys=False, allow_nan=False) + "\n"


def model_dirname(model_ref: str) -> str:
    """`--model` as typed, with ':' as '@' (so `silc-tiny@student` is its own folder)."""
    ref = model_ref.replace(":", "@")
    return ref.replace("/", "_")


def dataset_filename(dataset: str, profile: str = DEFAULT_PROFILE, default: str = DEFAULT_PROFILE) -> str:
    """One file name: `imagefolder:PATH` → `imagefolder-<last folder>`; a profile other than
    the task's default adds `@name`."""
    base, _, arg = dataset.partition(":")
    name = f"{base}-{Path(arg.rstrip('/')).name}" if arg else base
    return name if profile == default else f"{name}@{profile}"


def result_path(
    out: Path, model_ref: str, task: str, dataset: str, profile: str, default_profile: str = DEFAULT_PROFILE
) -> Path:
    fname = dataset_filename(dataset, profile, default_profile)
    return Path(out) / model_dirname(model_ref) / task / f"{fname}.json"


def write_result(path: Path, result: Result) -> None:
    """Write atomically: a crash never leaves a partial or corrupt result file."""
    for k, v in result.metrics.items():
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"metric {k} is not a finite number: {v!r}")
    text = result.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_result(path: Path) -> Result:
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read result {path}: {e}") from None
    if d.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version {d.get('schema_version')} != {SCHEMA_VERSION}")
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
    import open_clip
    import torch

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "numpy": numpy.__version__,
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
