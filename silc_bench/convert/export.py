"""`silc-bench export MODEL [--variant V] --out DIR`: a plain open_clip checkpoint others can load.

DIR becomes an open_clip `local-dir:` model: `open_clip_model.safetensors` (one variant's
image tower plus the text tower, fp32, open_clip state-dict names) and
`open_clip_config.json` (`model_cfg` and `preprocess_cfg`), so
`open_clip.create_model_and_transforms("local-dir:DIR")` and
`open_clip.get_tokenizer("local-dir:DIR")` rebuild it, and CLIP_benchmark's
`--model_type open_clip --model local-dir:DIR` evaluates it. `silc_bench_export.json`
records the source checkpoint's sha256, the variant, the preprocessing and the tokenizer.
A backend's extra parts (PACL's embedder, TCL's masker) are not open_clip and are left
out, and the sidecar says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from silc_bench.core.errors import UserError
from silc_bench.core.files import atomic_write_all, writable_dir
from silc_bench.models import load_model, parse_model_ref
from silc_bench.models.arch import open_clip_config


def _config(spec_arch: dict[str, Any]) -> dict[str, Any]:
    if "open_clip" in spec_arch:
        cfg = open_clip_config(spec_arch["open_clip"])
        if cfg is None:
            raise UserError(f"open_clip has no config for {spec_arch['open_clip']!r}")
        return json.loads(json.dumps(cfg))
    return json.loads(json.dumps(spec_arch["config"]))


def export_model(ref_text: str, out: Path) -> dict[str, Path]:
    ref = parse_model_ref(ref_text)
    model = load_model(ref, "cpu", "fp32")
    if not writable_dir(out):
        raise UserError(f"--out: cannot write into {out}")
    out.mkdir(parents=True, exist_ok=True)
    pp = model.preprocess.to_dict()
    cfg = _config(ref.spec.arch)
    ctx = model.info["tokenizer"].get("context_length")
    if ctx:
        cfg.setdefault("text_cfg", {})["context_length"] = int(ctx)
    preprocess_cfg = {
        "size": pp["size"],
        "mode": "RGB",
        "mean": pp["mean"],
        "std": pp["std"],
        "interpolation": pp["interpolation"],
        "resize_mode": pp["resize"],
    }
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.module.state_dict().items()}
    sidecar = {
        "model": ref_text,
        "variant": ref.variant,
        "preprocess": pp,
        "tokenizer": model.info["tokenizer"],
        "source_checkpoint_sha256": model.checkpoint_sha256,
        "left_out": [f"{k} (not an open_clip part)" for k in sorted(model.extras)],
        "load_with": f"open_clip.create_model_and_transforms('local-dir:{out}')",
    }
    files = {
        "weights": out / "open_clip_model.safetensors",
        "config": out / "open_clip_config.json",
        "sidecar": out / "silc_bench_export.json",
    }
    config = json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess_cfg}, indent=2) + "\n"
    atomic_write_all({
        files["weights"]: lambda tmp: save_file(state, str(tmp)),
        files["config"]: lambda tmp: tmp.write_text(config),
        files["sidecar"]: lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2) + "\n"),
    })  # fmt: skip
    return files
