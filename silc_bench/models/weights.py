"""Reading state dicts safely, whatever wrapper they come in.

Formats: .safetensors, and torch .pt/.pth/.bin. `torch.load` always runs with
`weights_only=True`, so a pickle that carries code is refused instead of executed.
Wrappers (`state_dict`, `model`) and DDP's `module.` prefix are removed. A bundle that
holds several variants keeps each variant's keys under `<variant>.`; selecting a variant
strips its prefix and drops the others.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

from silc_bench.core.errors import UserError, first_line

WRAPPERS = ("state_dict", "model", "module")
SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if path.suffix not in SUFFIXES:
        raise UserError(
            f"{path}: unsupported checkpoint format {path.suffix!r}; expected one of {', '.join(SUFFIXES)}"
        )
    if path.suffix == ".safetensors":
        try:
            sd = load_file(str(path))
        except Exception as e:
            raise UserError(f"{path}: corrupt safetensors file ({type(e).__name__}: {e})") from None
    else:
        try:
            with warnings.catch_warnings():  # "Detected pickle protocol 5": noise, not a fault
                warnings.simplefilter("ignore")
                sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise UserError(
                f"{path}: refused to load with weights_only=True: the pickle holds {_refused_what(str(e))}, "
                f"and untrusted checkpoints never execute code; if you trust the file, convert it once with "
                f"`silc-bench resave {path} --out {path.with_suffix('.safetensors')} --trust-pickle` "
                f"and use the .safetensors file"
            ) from None
        except Exception as e:
            raise UserError(f"{path}: corrupt checkpoint ({type(e).__name__}: {first_line(e)})") from None
    return unwrap(sd, path)


def _refused_what(message: str) -> str:
    """What torch's weights-only unpickler refused, without its advice to set
    weights_only=False (which would execute the file's code)."""
    m = re.search(r"GLOBAL ([\w.]+)(?: whose module ([\w.]+))?", message)
    if m:
        name, module = m.group(1), m.group(2)
        full = name if not module or name.startswith(module + ".") else f"{module}.{name}"
        return f"a reference to {full} (objects other than tensors)"
    m = re.search(r"Unsupported operand (\d+)", message)
    if m:
        return f"pickle opcode {m.group(1)}, which a plain tensor state dict does not use"
    return "objects other than tensors"


def unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Peel `state_dict`/`model` wrappers and `module.` prefixes; keep tensors only."""
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(
            f"{path}: no state dict found (expected a mapping of tensor names, "
            f"possibly under 'state_dict' or 'model')"
        )
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def select_variant(
    sd: dict[str, torch.Tensor], variant: str | None, variants: list[str]
) -> dict[str, torch.Tensor]:
    """Keep shared keys plus `<variant>.`-prefixed keys (prefix stripped); drop other variants."""
    out: dict[str, torch.Tensor] = {}
    prefixes = {v: f"{v}." for v in variants}
    for k, t in sd.items():
        owner = next((v for v, p in prefixes.items() if k.startswith(p)), None)
        if owner is None:
            out[k] = t
        elif owner == variant:
            out[k[len(prefixes[owner]) :]] = t
    return out


def _short(keys: list[str], n: int = 12) -> str:
    shown = ", ".join(keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}] ({len(keys)})"


def load_into(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Strict load with a readable error: both the missing and the unexpected keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise UserError(
            f"{source}: checkpoint does not match the architecture: "
            f"missing keys {_short(missing)}; unexpected keys {_short(unexpected)}"
        )
    bad = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    if bad:
        raise UserError(f"{source}: checkpoint shapes do not match the architecture: {_short(bad)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=True)
