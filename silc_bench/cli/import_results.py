"""`silc-bench import`: numbers measured elsewhere (CAT-Seg's open-vocabulary mIoU), as results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from silc_bench.cli.flags import add_results


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    im = sub.add_parser("import", parents=[common], help="numbers measured elsewhere (CAT-Seg), as results")
    im.add_argument("--task", required=True, help="ov-seg")
    im.add_argument("file", help="CSV (model,checkpoint_sha256,dataset,mIoU[,method]) or a JSON list")
    add_results(im)


def run(a: argparse.Namespace) -> int:
    from silc_bench.results.importer import import_results

    for path in import_results(a.task, Path(a.file), Path(a.results)):
        print(f"wrote {path}", file=sys.stderr)
    return 0
