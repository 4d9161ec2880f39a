"""A seeded random checkpoint of an open_clip architecture, loaded the way a user's is
(`open_clip:ARCH --weights FILE`), so a benchmark times silc-bench's own model path. Speed
does not depend on the weights' values."""

from __future__ import annotations

from pathlib import Path

import torch


def random_checkpoint(arch: str, folder: Path) -> Path:
    from safetensors.torch import save_file

    from silc_bench.models.arch import build_named

    torch.manual_seed(0)
    path = Path(folder) / f"{arch}.safetensors"
    save_file({k: v.contiguous() for k, v in build_named(arch).state_dict().items()}, str(path))
    return path


def load_random(arch: str, device: str, folder: Path, precision: str = "fp32", path: Path | None = None):  # noqa: ANN201
    """The VLModel of `random_checkpoint(arch)` (written once, or `path` if given)."""
    from silc_bench.models.resolve import load_model, parse_model_ref

    path = path or random_checkpoint(arch, folder)
    return load_model(parse_model_ref(f"open_clip:{arch}", str(path)), device, precision)
