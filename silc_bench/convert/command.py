"""`silc-bench convert --from big_vision IN.npz --out OUT.safetensors`: convert, verify, write.

The order matters: everything is checked and the converted model is compared with the
independent numpy forward (convert/reference.py) before a byte is written, so a failed
or interrupted conversion leaves no file behind, and a written file is a verified one.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from silc_bench.convert import reference
from silc_bench.convert.activation import target_activations
from silc_bench.convert.layout import TwoTower, describe
from silc_bench.convert.npz_tree import NpzTree
from silc_bench.convert.to_open_clip import choose_arch, custom_config, fit_problems, shapes_of, state_dict
from silc_bench.convert.tokenizer_meta import tokenizer_meta
from silc_bench.core.errors import UserError
from silc_bench.core.files import atomic_write, atomic_write_text
from silc_bench.core.hashing import file_sha256
from silc_bench.models.converted import METADATA_KEY

TOLERANCE = 1e-4  # fp32, max abs difference of embeddings against the numpy reference
BIG_VISION_PREPROCESS = {"resize": "squash", "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.5] * 3}


def _flush(notes: list[str]) -> None:
    """Progress notes are printed only once every check has passed: bad input gets one
    line, not a story."""
    for msg in notes:
        print(f"convert: {msg}", file=sys.stderr)


def _resample_posemb(tree: NpzTree, spec: TwoTower, grid: int, notes: list[str]) -> TwoTower:
    """big_vision's `resample_posemb`: bilinear (scipy zoom, order 1) on the patch grid."""
    from scipy.ndimage import zoom

    old = tree["img/pos_embedding"]
    g = spec.grid
    d = old.shape[-1]
    new = zoom(old.reshape(g, g, d), (grid / g, grid / g, 1), order=1).reshape(1, grid * grid, d)
    tree.overrides["img/pos_embedding"] = new.astype(np.float32)
    notes.append(
        f"position embeddings resampled from {g}x{g} to {grid}x{grid} patches "
        f"({spec.image_size} px → {grid * spec.patch} px, bilinear as big_vision's resample_posemb)"
    )
    return dataclasses.replace(spec, grid=grid)


def _target(
    arch: str | None, spec: TwoTower, tree: NpzTree, sd_shapes: dict[str, tuple[int, ...]], notes: list[str]
) -> tuple[torch.nn.Module, str, dict | None, TwoTower]:
    """(model, arch name or 'custom', custom config, spec at the model's resolution)."""
    from silc_bench.models.arch import build_from_config, build_named

    if arch is not None:
        model = build_named(arch)
        pos = getattr(getattr(model.visual, "trunk", None), "pos_embed", None)
        if pos is None:
            raise UserError(f"--arch {arch}: not an open_clip architecture with a timm ViT image tower")
        key = "visual.trunk.pos_embed"
        want = {k: v for k, v in shapes_of(model).items() if k != key}
        problems = fit_problems(want, {k: v for k, v in sd_shapes.items() if k != key}, arch)
        if problems:
            raise UserError(f"--arch {arch} does not fit {tree.path.name}: " + "; ".join(problems[:3]))
        n = pos.shape[1]
        g = int(round(n**0.5))
        if g * g == n and g != spec.grid:
            spec = _resample_posemb(tree, spec, g, notes)
        return model, arch, None, spec
    name = choose_arch(spec, sd_shapes)
    if name is not None:
        notes.append(f"architecture: open_clip {name} (every parameter's shape fits)")
        return build_named(name), name, None, spec
    cfg = custom_config(spec)
    notes.append(
        "architecture: no open_clip architecture fits; a custom config is written beside the weights"
    )
    return build_from_config(cfg), "custom", cfg, spec


def _verify(model: torch.nn.Module, tree: NpzTree, spec: TwoTower) -> dict[str, Any]:
    """Compare the converted model with the numpy reference run with the target's own GELU
    per tower (convert/activation.py), and measure what the other GELU would change."""
    act = target_activations(model)
    rng = np.random.default_rng(0)
    s = spec.image_size
    images = rng.uniform(-1, 1, (2, s, s, 3)).astype(np.float32)
    tokens = rng.integers(0, spec.vocab, (3, spec.context_length))
    model.eval()
    with torch.no_grad():
        img = model.encode_image(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
        txt = model.encode_text(torch.from_numpy(tokens)).numpy()
    ref = {
        k: (reference.encode_image(tree, spec, images, k)["embed"], reference.encode_text(tree, tokens, k))
        for k in ("exact", "tanh")
    }
    diffs = {
        "image_embedding": float(np.abs(img - ref[act["image"]][0]).max()),
        "text_embedding": float(np.abs(txt - ref[act["text"]][1]).max()),
        "logit_scale": abs(model.logit_scale.item() - float(tree["t"].reshape(()))),
    }
    if spec.has_bias:
        diffs["logit_bias"] = abs(model.logit_bias.item() - float(tree["b"].reshape(())))
    gelu = {
        "image_embedding": float(np.abs(ref["tanh"][0] - ref["exact"][0]).max()),
        "text_embedding": float(np.abs(ref["tanh"][1] - ref["exact"][1]).max()),
    }
    names = {"exact": "exact GELU", "tanh": "tanh-approximate GELU"}
    return {
        "against": "numpy big_vision forward (silc_bench/convert/reference.py) with the target's GELU: "
        f"image {names[act['image']]}, text {names[act['text']]}",
        "activation": act,
        "inputs": "2 uniform(-1, 1) images, 3 uniform random token sequences (seed 0)",
        "max_abs_diff": diffs,
        "tolerance": TOLERANCE,
        "gelu_tanh_vs_exact_max_abs_diff": gelu,
        "gelu_note": "big_vision trains with flax's tanh-approximate GELU; a tower whose `activation` is "
        "exact differs from the trained model by the difference above (open_clip's SigLIP towers; "
        "SigLIP2 text towers are tanh).",
    }


def _write_atomic(out: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, str]:
    """Write the file with its record sealed to the tensors (models/header_digest.py), all
    in the temporary file, so `out` appears complete or not at all. Returns the digest."""
    from safetensors.torch import save_file

    from silc_bench.models.header_digest import placeholder, seal

    sealed: dict[str, str] = {}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps({**meta, "digest": placeholder()})})
        sealed.update(seal(tmp, METADATA_KEY))

    atomic_write(out, write)
    return sealed


def convert_big_vision(
    src: Path,
    out: Path,
    arch: str | None = None,
    tokenizer: Path | None = None,
    pooling: str | None = None,
    fp16: bool = False,
    pad: str | int = "auto",
) -> dict[str, Any]:
    """Convert, verify and write; return the metadata written into the file."""
    out = Path(out).expanduser()
    _check_out(out)
    notes: list[str] = []
    tree = NpzTree(Path(src).expanduser())
    spec = describe(tree, pooling)
    notes.append(_layout_note(tree, spec))
    tok_meta = tokenizer_meta(tokenizer, spec, pad, notes)
    sd = state_dict(tree, spec)
    _check_unused(tree)
    model, arch_name, cfg, spec = _target(arch, spec, tree, shapes_of(sd), notes)
    _load(model, tree, sd, arch_name)
    del sd
    check = _verify(model, tree, spec)
    _check_verification(check, notes)
    meta = _metadata(tree, arch_name, spec, tok_meta, check, fp16, cfg)
    tensors = _tensors(model, fp16)
    _flush(notes)
    meta["digest"] = _write_atomic(out, tensors, meta)
    if cfg is not None:
        cfg_path = out.with_name(out.stem + ".config.json")
        atomic_write_text(
            cfg_path,
            json.dumps({"model_cfg": cfg, "silc_bench": "custom config of a converted checkpoint"}, indent=2),
        )
    return meta


def _check_out(out: Path) -> None:
    """Refuse an output path that cannot be written before any work is done."""
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; name the .safetensors file to write")
    if out.suffix != ".safetensors":
        raise UserError(f"--out {out}: the output must be a .safetensors file")
    if out.resolve().parent == Path(out.resolve().anchor):
        raise UserError(
            f"--out {out}: writes into the root folder (is $SILC_BENCH_WEIGHTS unset?); "
            "name a file in another folder, or leave --out out with --register"
        )
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")


def _layout_note(tree: NpzTree, spec: TwoTower) -> str:
    """The progress note saying which layout was read from the checkpoint."""
    return (
        f"{tree.path.name}: {spec.pooling.upper()}-pooled ViT, patch {spec.patch}, {spec.image_size} px, "
        f"width {spec.img.width}, depth {spec.img.depth}, {'scanned' if spec.img.scanned else 'per-block'} "
        f"layout{', params/ prefix' if tree.prefix else ''}; text width {spec.txt.width}, "
        f"{spec.context_length} tokens, vocab {spec.vocab}"
    )


def _check_unused(tree: NpzTree) -> None:
    """Every checkpoint parameter must be converted, else the assumed layout is wrong."""
    unused = tree.unused()
    if unused:
        shown = ", ".join(tree.prefix + n for n in unused[:4])
        raise UserError(
            f"{tree.path.name}: {len(unused)} parameter(s) would be left out of the conversion "
            f"({shown}{', ...' if len(unused) > 4 else ''}); this is not the two-tower layout assumed "
            "(or --pooling does not match the checkpoint)"
        )


def _load(model: torch.nn.Module, tree: NpzTree, sd: dict[str, torch.Tensor], arch_name: str) -> None:
    """Load the converted weights (with any resampled position embedding) into the target model."""
    if "img/pos_embedding" in tree.overrides:
        sd["visual.trunk.pos_embed"] = torch.from_numpy(tree.overrides["img/pos_embedding"])
    problems = fit_problems(shapes_of(model), shapes_of(sd), arch_name)
    if problems:  # --arch was checked in _target; this guards the inferred and custom ones
        raise UserError(f"architecture {arch_name} does not fit {tree.path.name}: " + "; ".join(problems[:3]))
    model.load_state_dict(sd, strict=True)


def _check_verification(check: dict[str, Any], notes: list[str]) -> None:
    """Note the measured differences and refuse a model that strays from the reference."""
    worst = max(v if np.isfinite(v) else float("inf") for v in check["max_abs_diff"].values())
    notes.append(f"verifying against the {check['against']}")
    for k, v in check["max_abs_diff"].items():
        notes.append(f"verify {k}: max |Δ| = {v:.2e}")
    for k, v in check["gelu_tanh_vs_exact_max_abs_diff"].items():
        notes.append(f"tanh-approximate vs exact GELU, {k}: max |Δ| = {v:.2e} (recorded in the metadata)")
    if not np.isfinite(worst) or worst > TOLERANCE:
        raise UserError(
            f"verification failed: max |Δ| = {worst:.2e} against the numpy reference exceeds {TOLERANCE:g}; "
            f"no file written"
        )


def _metadata(
    tree: NpzTree,
    arch_name: str,
    spec: TwoTower,
    tok_meta: dict[str, Any],
    check: dict[str, Any],
    fp16: bool,
    cfg: dict | None,
) -> dict[str, Any]:
    """The record stored in the file: where it came from, how to build, preprocess and tokenize."""
    meta = {
        "format": 1,
        "converted_from": {"format": "big_vision", "file": tree.path.name, "sha256": file_sha256(tree.path)},
        "arch": arch_name,
        "layout": spec.to_dict(),
        "preprocess": {"size": spec.image_size, **BIG_VISION_PREPROCESS},
        "tokenizer": tok_meta,
        "verification": check,
        "dtype": "float16" if fp16 else "float32",
    }
    if "img/pos_embedding" in tree.overrides:
        meta["pos_embed_resampled"] = True
    if cfg is not None:
        meta["config"] = cfg
    return meta


def _tensors(model: torch.nn.Module, fp16: bool) -> dict[str, torch.Tensor]:
    """The tensors to write, in the chosen dtype; refuse float16 values that overflow."""
    tensors = {
        k: (v.half() if fp16 and v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"--fp16: {bad[0]} overflows float16 ({len(bad)} tensor(s)); write float32 instead")
    return tensors
