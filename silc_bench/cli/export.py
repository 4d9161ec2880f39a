"""`silc-bench export`: a registry entry as a plain open_clip checkpoint + config others can load."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from silc_bench.core.errors import UserError


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    ex = sub.add_parser(
        "export", parents=[common], help="a plain open_clip checkpoint + config others can load"
    )
    ex.add_argument("model", help="NAME or NAME:VARIANT (a registry entry)")
    ex.add_argument("--variant", help="teacher or student (same as NAME:VARIANT)")
    ex.add_argument("--out", required=True, help="a folder that becomes an open_clip `local-dir:` model")


def run(a: argparse.Namespace) -> int:
    from silc_bench.convert.export import export_model

    ref = a.model
    if a.variant:
        if ":" in ref:
            raise UserError("give the variant once: NAME:VARIANT or --variant")
        ref = f"{ref}:{a.variant}"
    for kind, path in export_model(ref, Path(a.out)).items():
        print(f"wrote {path} ({kind})", file=sys.stderr)
    return 0
