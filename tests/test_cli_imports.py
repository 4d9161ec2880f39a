"""The CLI answers before the heavy libraries load: argument errors, unknown names (with
their did-you-mean), `--help`, `list`, `check`, `table` and `import` never import torch or
mmseg where they do not need them (each case in a fresh interpreter, reading sys.modules)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "mmseg", "mmengine", "open_clip", "torchvision")

PROBE = f"""
import json, sys
from silc_bench.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as e:
    code = e.code
print(json.dumps({{"code": code, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _probe(args: list[str], tmp_path) -> dict:  # noqa: ANN001
    cmd = [sys.executable, "-c", PROBE, json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args, code",
    [
        (["--help"], 0),
        (["run", "--help"], 0),
        (["run", "--task", "zs-clss", "--model", "silc-tiny"], 2),
        (["run", "--task", "zs-cls", "--model", "silc-tiny", "--dataset", "cifar1000"], 2),
        (["run", "--task", "zs-cls", "--model", "silc-tiny", "--batch-size", "0"], 2),
        (["run", "--task"], 2),
        (["list", "tasks"], 0),
        (["list", "models"], 0),
        (["list", "datasets"], 0),
        (["table", "1", "--paper"], 0),
        (["check", "nowhere"], 2),
        (["import", "--task", "ov-seg", "missing.csv"], 2),
        (["figure", "--models", "a", "--dataset", "shapes-seg", "--n", "0"], 2),
    ],
)
def test_the_cli_answers_without_importing_torch_or_mmseg(args, code, tmp_path):
    found = _probe(args, tmp_path)
    assert found["code"] == code and found["loaded"] == [], found


def test_import_silc_bench_cli_imports_nothing_heavy():
    code = f"import sys, silc_bench.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
