"""The wheel carries checkpoints.yaml, tasks/ and reports/paper/, and runs from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from silc_bench.core.paths import REPO_ROOT

# Run the unpacked wheel, not the editable checkout: drop the editable finder first.
RUNNER = """
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv[1])
import silc_bench
assert silc_bench.__file__.startswith(sys.argv[1]), silc_bench.__file__
from silc_bench.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def test_wheel_contents_and_a_run_from_another_folder(tmp_path):
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"]
    build = subprocess.run(
        [*pip, "-w", str(wheels), "."], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stderr
    (whl,) = wheels.glob("silc_bench-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for must in (
        "silc_bench/_bundled/checkpoints.yaml",
        "silc_bench/_bundled/tasks/zs-seg/_task.yaml",
        "silc_bench/_bundled/tasks/zs-seg/profiles/tcl.yaml",
        "silc_bench/_bundled/reports/paper/table1.yaml",
        "silc_bench/weights/silc-tiny.safetensors",
        "silc_bench/assets/model_configs/ShapesTiny-P8.json",
        "silc_bench/assets/classnames/imagenet.txt",
    ):
        assert must in names, must
    site = tmp_path / "site"
    zipfile.ZipFile(whl).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "SILC_BENCH_CACHE": os.environ["SILC_BENCH_CACHE"]}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", RUNNER, str(site), *args],
            cwd=elsewhere, capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    listed = cli("list", "models")
    assert listed.returncode == 0 and "silc-tiny" in listed.stdout, listed.stderr
    table = cli("table", "1", "--paper", "--results", "none")
    assert table.returncode == 0 and "76.2" in table.stdout, table.stderr
    demo = cli("demo", "--quiet", "--out", str(elsewhere / "results"))
    assert demo.returncode == 0 and "16.39" in demo.stdout, demo.stderr
