"""Training checkpoints: everything needed to continue bit-for-bit, loaded with weights_only=True.

A checkpoint holds the student (and head), the objective's own state (EMA teacher, DINO
centre), the optimizer, the step, the CPU RNG state and the config as JSON. Resuming under
a different config would silently mix two runs, so it is refused with the differing keys
named; only `workers` and `checkpoint_every` may change, as they do not touch the maths.
The one exception: the last checkpoint of a finished run may be resumed with a larger
`optim.steps`, which extends the run (its schedule then spans the new length).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from silc_bench.core.errors import UserError
from silc_bench.core.files import atomic_write
from silc_bench.train.config import flat_diff

FORMAT = "silc-bench-train/1"
MAY_DIFFER = ("workers", "checkpoint_every")


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step-{step:08d}.pt"


def save_checkpoint(path: Path, state: dict[str, Any], config: dict[str, Any]) -> None:
    """Atomic: written next to its final name, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**state, "format": FORMAT, "config": json.dumps(config, sort_keys=True)}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--resume: checkpoint not found: {path}")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"--resume {path}: refused: the pickle holds more than tensors ({first})") from None
    except Exception as e:  # noqa: BLE001 - any decoding failure is a bad file
        raise UserError(f"--resume {path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"--resume {path}: not a silc-bench training checkpoint (format {FORMAT})")
    problem = _field_problem(ckpt)
    if problem:
        raise UserError(f"--resume {path}: a damaged checkpoint: {problem}; resume from another one")
    return ckpt


def _field_problem(ckpt: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's fields (None: nothing), before anything reads them:
    a hand-edited or foreign file must be one line, not a traceback from int() or torch."""
    for key in ("step", "model", "objective", "optimizer", "rng", "config"):
        if key not in ckpt:
            return f"it has no {key!r}"
    step = ckpt["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"step must be a whole number >= 0, found {_short(step)}"
    for key in ("model", "objective", "optimizer"):
        if not isinstance(ckpt[key], Mapping):
            return f"{key} must be a mapping (a state dict), found {_short(ckpt[key])}"
    rng = ckpt["rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
        return f"rng must be a torch.uint8 tensor (torch.get_rng_state()), found {_short(rng)}"
    try:
        saved = json.loads(ckpt["config"]) if isinstance(ckpt["config"], str) else None
    except ValueError:
        saved = None
    optim = saved.get("optim") if isinstance(saved, dict) else None
    steps = optim.get("steps") if isinstance(optim, dict) else None
    if not isinstance(saved, dict) or not isinstance(steps, int) or isinstance(steps, bool):
        return "config must be the run's config as JSON, with optim.steps"
    if step > steps:
        return f"step {step} is past the run's optim.steps {steps}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_same_config(ckpt: dict[str, Any], config: dict[str, Any], path: Path) -> bool:
    """Refuse a resume under another config; True when it extends a finished run."""
    saved = json.loads(ckpt["config"])
    differ = [k for k in flat_diff(saved, config) if k not in MAY_DIFFER]
    step, before, after = int(ckpt["step"]), int(saved["optim"]["steps"]), int(config["optim"]["steps"])
    extends = "optim.steps" in differ and step == before and after > before
    if "optim.steps" in differ and not extends:
        done = "finished" if step == before else f"at step {step} of {before}"
        raise UserError(
            f"--resume {path}: optim.steps {before} -> {after}, but the run is {done}; the number of "
            "steps may only grow, from the last checkpoint of a finished run (--steps larger than its "
            f"{before})"
        )
    differ = [k for k in differ if not (extends and k == "optim.steps")]
    if differ:
        shown = "; ".join(f"{k}: {_get(saved, k)!r} -> {_get(config, k)!r}" for k in differ[:8])
        raise UserError(
            f"--resume {path}: the config differs from the checkpoint's in {differ} ({shown}); "
            "resume with the checkpoint's config or start a new run"
        )
    return extends


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d
