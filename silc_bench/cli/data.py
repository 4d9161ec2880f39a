"""`silc-bench data get NAME` and `silc-bench data check NAME`: datasets the way users get them.

`get` downloads a dataset's official archives, verifies them against the published
checksums, extracts them safely and converts the annotations into the layout `run` reads;
for sets behind a login it says what to download by hand and where to put it. `check`
verifies a folder you already have against the published split. Torch is never imported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from silc_bench.core import paths


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    d = sub.add_parser("data", parents=[common], help="download (get) or verify (check) a dataset")
    actions = d.add_subparsers(dest="action", required=True, parser_class=type(d))
    for name, helptext in (
        ("get", "download, verify, extract and convert a dataset into --data-root"),
        ("check", "verify a dataset folder against the published split (exit 1 if it is not)"),
    ):
        a = actions.add_parser(name, parents=[common], help=helptext, description=helptext)
        a.add_argument(
            "name", help="a dataset (cifar100, coco, coco-stuff, ade20k, voc21, pc59, ...) or source name"
        )
        a.add_argument(
            "--data-root", default=None, help="datasets folder (default $SILC_BENCH_DATA, else ./data)"
        )
        a.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "get":
            a.add_argument(
                "--keep-archives",
                action="store_true",
                help="keep the verified archives in DATA_ROOT/.downloads",
            )


def run(a: argparse.Namespace) -> int:
    from silc_bench.data.get import catalogue

    source = catalogue.load(a.name)
    root = Path(a.data_root or paths.data_root()).expanduser()
    if a.action == "get":
        from silc_bench.data.get.prepare import get

        code, text = get(source, root, a.quiet, a.keep_archives)
        print(text)
        return code
    return _check(source, root, a.quiet)


def _check(source, root: Path, quiet: bool) -> int:  # noqa: ANN001
    from silc_bench.data.get.check import check_folder
    from silc_bench.data.get.prepare import MARKER, manual_instructions, read_marker

    target = root / source.target
    report = check_folder(source, target, quiet)
    marker = read_marker(target) if target.is_dir() else None
    if not report.problems:
        print(
            f"{source.name}: {target} is the published set (for {', '.join(source.uses)}): "
            f"{'; '.join(report.facts)}"
        )
        for w in report.warnings:
            print(f"  warning: {w}")
        for arch in (marker or {}).get("archives", []):
            print(f"  {arch['file']}: sha256 {arch['sha256']} (from {MARKER})")
        return 0
    print(f"{source.name}: {target} is not the published set:", file=sys.stderr)
    for p in report.problems:
        print(f"  - {p}", file=sys.stderr)
    for w in report.warnings:
        print(f"  warning: {w}", file=sys.stderr)
    away = f"move {target} away, then " if target.exists() else ""
    if source.manual:
        how = manual_instructions(source, root) or f"silc-bench data get {source.name} --data-root {root}"
        fix = f"how to fix: {away}get the files by hand:\n{how}"
    else:
        fix = (
            f"how to fix: {away}run `silc-bench data get {source.name} --data-root {root}`, "
            f"which downloads the official archives and converts them (docs/datasets.md)"
        )
    print(fix, file=sys.stderr)
    return 1
