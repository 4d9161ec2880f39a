"""`silc-bench resave`: a pickle checkpoint you trust → a tensors-only safetensors file, once."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    rs = sub.add_parser(
        "resave", parents=[common], help="one-time: a pickle checkpoint you trust → tensors-only safetensors"
    )
    rs.add_argument("src", metavar="IN.pth")
    rs.add_argument("--out", required=True, help="OUT.safetensors")
    rs.add_argument("--trust-pickle", action="store_true", help="required: unpickling runs the file's code")


def run(a: argparse.Namespace) -> int:
    from silc_bench.convert.resave import resave

    n = resave(Path(a.src), Path(a.out), a.trust_pickle)
    print(f"wrote {a.out}: {n['tensors']} tensors, loadable with weights_only / safetensors")
    return 0
