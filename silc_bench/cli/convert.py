"""`silc-bench convert`: a big_vision .npz → a verified open_clip safetensors file."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    cv = sub.add_parser(
        "convert", parents=[common], help="big_vision .npz → a verified open_clip safetensors file"
    )
    cv.add_argument("src", metavar="IN.npz", help="the big_vision two-tower checkpoint")
    cv.add_argument("--from", dest="source_format", default="big_vision", choices=["big_vision"])
    cv.add_argument("--out", required=True, help="OUT.safetensors (its folder must exist)")
    cv.add_argument("--arch", help="open_clip architecture to load it into (default: from shapes)")
    cv.add_argument("--tokenizer", help="its sentencepiece .model file (recorded in the metadata)")
    cv.add_argument("--pooling", help="map, gap or tok (default: inferred from the parameters)")
    cv.add_argument("--fp16", action="store_true", help="write float16 tensors (default float32)")
    cv.add_argument("--name", help="the model name --register gives it (default: OUT's stem)")
    cv.add_argument("--register", action="store_true", help="add it to the user models file")


def run(a: argparse.Namespace) -> int:
    from silc_bench.convert.command import TOLERANCE, convert_big_vision
    from silc_bench.convert.register import register_converted
    from silc_bench.core.paths import user_models_file

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
