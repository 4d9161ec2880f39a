"""`silc-bench export`, `convert` and `resave`: commands that write model files, not results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from silc_bench.errors import UserError


def cmd_export(a: argparse.Namespace) -> int:
    from silc_bench.export import export_model

    ref = a.model
    if a.variant:
        if ":" in ref:
            raise UserError("give the variant once: NAME:VARIANT or --variant")
        ref = f"{ref}:{a.variant}"
    for kind, path in export_model(ref, Path(a.out)).items():
        print(f"wrote {path} ({kind})", file=sys.stderr)
    return 0


def cmd_convert(a: argparse.Namespace) -> int:
    from silc_bench.convert.command import TOLERANCE, convert_big_vision
    from silc_bench.user_models import register_converted, user_models_file

    out = Path(a.out).expanduser().resolve()
    name = a.name or out.stem
    if a.register:  # a bad name fails before minutes of conversion
        register_converted(name, out, None, dry_run=True)
    tok = Path(a.tokenizer) if a.tokenizer else None
    meta = convert_big_vision(Path(a.src), out, a.arch, tok, a.pooling, a.fp16)
    diffs = meta["verification"]["max_abs_diff"]
    worst = max(diffs.values(), key=abs)
    print(f"wrote {out}: open_clip {meta['arch']}, verified (max |Δ| {worst:.1e} ≤ {TOLERANCE:.0e})")
    if a.register:
        register_converted(name, out, meta)
        print(f"registered {name!r} in {user_models_file()}: silc-bench run --model {name} ...")
    return 0


def cmd_resave(a: argparse.Namespace) -> int:
    from silc_bench.resave import resave

    n = resave(Path(a.src), Path(a.out), a.trust_pickle)
    print(f"wrote {a.out}: {n['tensors']} tensors, loadable with weights_only / safetensors")
    return 0
