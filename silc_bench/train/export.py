"""Writing a trained model as a safetensors bundle plus a ready-to-paste checkpoints.yaml entry.

Keys are exactly open_clip's state-dict names (a distilled run keeps its two image towers
under `teacher.visual.*` and `student.visual.*` and shares the rest; PACL adds `pacl.*`),
so `silc_bench.models.load_model` reads the files with no conversion. The DINO head is
training-only and never exported. The safetensors metadata carries, under the key
`silc_bench`, a JSON record: config, preprocess, tokenizer, step, arch, backend, variants.

Files of at most `max_file_mb` each: `NAME.safetensors`, or `NAME-00001-of-0000N.safetensors`
when one file would be too big. A single tensor larger than the limit cannot be split
without renaming it, so it gets a file of its own (with a warning).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from silc_bench.core.hashing import file_sha256
from silc_bench.models.preprocess import OPENAI_MEAN, OPENAI_STD

log = logging.getLogger(__name__)
MB = 1024 * 1024


def preprocess_record(size: int) -> dict[str, Any]:
    """The evaluation preprocessing matching training: short side to size, centre crop, CLIP stats."""
    return {
        "size": size,
        "resize": "shortest",
        "interpolation": "bicubic",
        "mean": list(OPENAI_MEAN),
        "std": list(OPENAI_STD),
    }


def _prepare(state: dict[str, torch.Tensor], fp16: bool) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if fp16 and v.is_floating_point():
            v = v.half()
        out[k] = v.contiguous().clone()
    return out


def plan_files(sizes: dict[str, int], max_bytes: int, overhead: int) -> list[list[str]]:
    """Greedy, in key order: each group's bytes plus header stay under `max_bytes` when possible."""
    groups: list[list[str]] = [[]]
    used = overhead
    for key, size in sizes.items():
        cost = size + len(key) + 128  # the tensor and its JSON header entry
        if groups[-1] and used + cost > max_bytes:
            groups.append([])
            used = overhead
        groups[-1].append(key)
        used += cost
    return groups


def shard_names(name: str, n: int) -> list[str]:
    if n == 1:
        return [f"{name}.safetensors"]
    return [f"{name}-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]


def write_bundle(
    state: dict[str, torch.Tensor],
    out_dir: Path,
    name: str,
    record: dict[str, Any],
    fp16: bool = False,
    max_file_mb: float = 25.0,
) -> list[Path]:
    """Write the tensors (split as needed) with `record` as JSON metadata; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob(f"{name}-*-of-*.safetensors"), out_dir / f"{name}.safetensors"]:
        stale.unlink(missing_ok=True)  # a previous export with another split
    tensors = _prepare(state, fp16)
    metadata = {"format": "pt", "silc_bench": json.dumps(record, sort_keys=True)}
    max_bytes = int(max_file_mb * MB)
    sizes = {k: v.numel() * v.element_size() for k, v in tensors.items()}
    groups = plan_files(sizes, max_bytes, overhead=len(metadata["silc_bench"]) + 1024)
    files = [out_dir / n for n in shard_names(name, len(groups))]
    for path, keys in zip(files, groups):
        save_file({k: tensors[k] for k in keys}, str(path), metadata=metadata)
        if path.stat().st_size > max_bytes:
            log.warning(
                "%s is %.1f MB (> export.max_file_mb): tensor %s alone exceeds it",
                path,
                path.stat().st_size / MB,
                keys[0],
            )
    return files


def write_entry(out_dir: Path, name: str, files: list[Path], fields: dict[str, Any]) -> Path:
    """NAME.yaml: `models: {NAME: entry}`, usable as $SILC_BENCH_CHECKPOINTS or pasted into checkpoints.yaml.

    Paths are absolute so the file works where it was written; to publish, copy the files
    into the weights folder ($SILC_BENCH_WEIGHTS) and keep only their names.
    """
    entry = {
        **fields,
        "weights": {
            "path": [str(p.resolve()) for p in files],
            "sha256": [file_sha256(p) for p in files],
        },
    }
    path = out_dir / f"{name}.yaml"
    header = (
        f"# {name}: written by `silc-bench train`. Use it as is with\n"
        f"# SILC_BENCH_CHECKPOINTS={path.resolve()}, or paste the entry under `models:`\n"
        "# in checkpoints.yaml.\n"
    )
    path.write_text(header + yaml.safe_dump({"models": {name: entry}}, sort_keys=False))
    return path


def read_record(path: Path) -> dict[str, Any]:
    """The JSON record stored in an exported file's metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {})["silc_bench"])
