"""`silc-bench resave IN.pth --out OUT.safetensors --trust-pickle`: a one-time, knowing re-save.

Checkpoints are always read with `weights_only=True`, which refuses a pickle holding
anything but tensors and plain containers (an argparse Namespace, a config object): loading
those would run code from the file. Some released files (TCL's `tcl.pth` among them, when it
carries its training config) need that. This command is the one place that unpickles with
`weights_only=False`, only with `--trust-pickle`, and writes the tensors alone as
safetensors, which every later run reads without executing anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from silc_bench.core.errors import UserError
from silc_bench.core.files import atomic_write
from silc_bench.models.weights import unwrap


def _tensors(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor under nested dicts, with dotted names; other objects are dropped."""
    if isinstance(obj, torch.Tensor):
        return {prefix[:-1]: obj}
    if isinstance(obj, dict):
        out: dict[str, torch.Tensor] = {}
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}{k}."))
        return out
    return {}


def _left_out(obj: object, saved: dict[str, torch.Tensor]) -> list[str]:
    """The top-level entries none of whose tensors are saved. Judged by the tensors
    themselves, not by key names: in a flat state dict every tensor entry is kept (only
    non-tensor entries such as `epoch` are left out), in a wrapped one the wrapper is kept
    and its siblings (optimizer state, config) are left out."""
    if not isinstance(obj, dict):
        return []
    kept = {id(t) for t in saved.values()}
    return sorted(str(k) for k, v in obj.items() if not any(id(t) in kept for t in _tensors(v).values()))


def resave(src: Path, out: Path, trust: bool) -> dict[str, int]:
    if not trust:
        raise UserError(
            "resave unpickles the file with weights_only=False, which runs any code it carries; "
            "add --trust-pickle only for a file from a source you trust"
        )
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not src.is_file():
        raise UserError(f"{src}: file not found")
    if out.suffix != ".safetensors" or not out.parent.is_dir():
        raise UserError(f"--out {out}: must be a .safetensors file in an existing folder")
    try:
        obj = torch.load(str(src), map_location="cpu", weights_only=False)  # the user chose to trust it
    except Exception as e:  # noqa: BLE001 - any failure to unpickle is a bad input file
        raise UserError(f"{src}: cannot be unpickled ({type(e).__name__}: {e})") from None
    try:
        sd = unwrap(obj, src)  # the state dict under `model` / `state_dict`, as loading would pick
    except UserError:
        sd = _tensors(obj)
    dropped = _left_out(obj, sd)
    if not sd:
        raise UserError(f"{src}: holds no tensors")
    from safetensors.torch import save_file

    atomic_write(out, lambda tmp: save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp)))
    if dropped:
        print(f"resave: left out the non-state-dict entries {dropped}", file=sys.stderr)
    return {"tensors": len(sd), "left_out": len(dropped)}
