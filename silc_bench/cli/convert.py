"""`silc-bench convert`: a big_vision .npz → a verified open_clip safetensors file."""

from __future__ import annotations

import argparse
from pathlib import Path

from silc_bench.core.errors import UserError


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    cv = sub.add_parser(
        "convert", parents=[common], help="big_vision .npz → a verified open_clip safetensors file"
    )
    cv.add_argument("src", metavar="IN.npz", help="the big_vision two-tower checkpoint")
    cv.add_argument("--from", dest="source_format", default="big_vision", choices=["big_vision"])
    cv.add_argument(
        "--out",
        help="OUT.safetensors (its folder must exist); with --register the default is "
        "NAME.safetensors in the weights folder ($SILC_BENCH_WEIGHTS)",
    )
    cv.add_argument("--arch", help="open_clip architecture to load it into (default: from shapes)")
    cv.add_argument("--tokenizer", help="its sentencepiece .model file (recorded in the metadata)")
    cv.add_argument(
        "--pad-id",
        help="the id texts are padded with: auto (default: the PAD piece for a Gemma-layout vocabulary, "
        "else EOS), eos, pad, or a number",
    )
    cv.add_argument("--pooling", help="map, gap or tok (default: inferred from the parameters)")
    cv.add_argument("--fp16", action="store_true", help="write float16 tensors (default float32)")
    cv.add_argument("--name", help="the model name --register gives it (default: OUT's stem, else IN's)")
    cv.add_argument("--register", action="store_true", help="add it to the user models file")


def _out_and_name(a: argparse.Namespace) -> tuple[Path, str]:
    """--out, or with --register the weights folder's NAME.safetensors; the name --register
    uses. The weights folder is created if missing (it is ours); any other folder must exist."""
    from silc_bench.core.paths import weights_dir

    folder = weights_dir().expanduser().resolve()
    if a.out:
        out = Path(a.out).expanduser().resolve()
        if out.parent == folder and out.parent != Path(out.anchor):
            _make(folder)  # the weights folder is ours to create; any other must exist
        return out, a.name or out.stem
    if not a.register:
        raise UserError("convert: give --out OUT.safetensors, or --register to write NAME.safetensors "
                        "into the weights folder")  # fmt: skip
    name = a.name or Path(a.src).stem
    _make(folder)
    return folder / f"{name}.safetensors", name


def _make(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"convert: cannot create the weights folder {folder} ({e.strerror or e})") from None


def run(a: argparse.Namespace) -> int:
    from silc_bench.convert.command import TOLERANCE, convert_big_vision
    from silc_bench.convert.register import register_converted
    from silc_bench.convert.tokenizer_meta import parse_pad
    from silc_bench.core.paths import user_models_file

    pad = parse_pad(a.pad_id)
    if a.register:  # a bad name fails before a folder is made and minutes of conversion
        name = a.name or Path(a.out or a.src).stem
        register_converted(name, Path(a.out or "."), None, dry_run=True)
    out, name = _out_and_name(a)
    tok = Path(a.tokenizer) if a.tokenizer else None
    meta = convert_big_vision(Path(a.src), out, a.arch, tok, a.pooling, a.fp16, pad)
    diffs = meta["verification"]["max_abs_diff"]
    worst = max(diffs.values(), key=abs)
    print(f"wrote {out}: open_clip {meta['arch']}, verified (max |Δ| {worst:.1e} ≤ {TOLERANCE:.0e})")
    if a.register:
        register_converted(name, out, meta)
        print(f"registered {name!r} in {user_models_file()}: silc-bench run --model {name} ...")
    return 0
