"""The wheel carries checkpoints.yaml, tasks/ and reports/paper/, runs from any folder, and
installs into an existing torch environment without replacing anything in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

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


@pytest.fixture(scope="module")
def whl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wheel, built offline (no build isolation), for every test here."""
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"]
    build = subprocess.run(
        [*pip, "-w", str(wheels), "."], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stderr
    (found,) = wheels.glob("silc_bench-*.whl")
    return found


def _requires_dist(whl: Path) -> list[Requirement]:
    """The wheel's Requires-Dist: what `pip install silc-bench` will actually ask for."""
    with zipfile.ZipFile(whl) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        headers = Parser().parsestr(z.read(meta).decode())
    return [Requirement(r) for r in headers.get_all("Requires-Dist") or []]


def test_metadata_pins_nothing_exactly(whl):
    # An exact pin makes `pip install` replace a cluster's own torch (a 3 GB download);
    # exact versions belong in constraints.txt, which only CI and `make` pass to pip.
    reqs = _requires_dist(whl)
    assert {"torch", "torchvision", "open-clip-torch", "mmsegmentation"} <= {
        r.name.lower().replace("_", "-") for r in reqs
    }
    pinned = [str(r) for r in reqs if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not pinned, f"exact pins in the package metadata: {pinned}"
    for r in reqs:  # every heavy dependency has an upper bound at its next major
        if r.name.lower() in ("torch", "torchvision", "open-clip-torch", "open_clip_torch"):
            assert any(s.operator == "<" for s in r.specifier), str(r)
    pins = (REPO_ROOT / "constraints.txt").read_text()
    assert "torch==" in pins and "torchvision==" in pins  # the tested versions still live somewhere


CLUSTER_TORCH = "2.15.0"


def _overlay_venv(root: Path) -> Path:
    """A venv whose base is .venv's interpreter and which sees .venv's packages through one
    .pth line: an existing torch environment, built offline in a second. A .pth line adds a
    folder without running the .pth files in it, so the editable checkout stays out."""
    subprocess.run(
        [getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(root)],
        check=True, timeout=120,
    )  # fmt: skip
    py = root / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "existing-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # A cluster's torch is rarely the one CI pinned: record a newer one, in the supported
    # range (pip reads this metadata first, before .venv's; the code imported stays .venv's).
    meta = Path(site, f"torch-{CLUSTER_TORCH}.dist-info")
    meta.mkdir()
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {CLUSTER_TORCH}\n")
    (meta / "INSTALLER").write_text("test\n")
    return py


# Our requirements, each checked against what is installed, from inside the target venv.
CHECK_OURS = """
import json, sys
from importlib.metadata import distribution, version, PackageNotFoundError
from packaging.requirements import Requirement
dist = distribution("silc-bench")
bad = []
for line in dist.requires or []:
    r = Requirement(line)
    if r.marker is not None and not r.marker.evaluate({"extra": ""}):
        continue
    try:
        have = version(r.name)
    except PackageNotFoundError:
        bad.append(f"{r}: not installed"); continue
    if not r.specifier.contains(have, prereleases=True):
        bad.append(f"{r}: have {have}")
import silc_bench, torch
print(json.dumps({"bad": bad, "silc_bench": silc_bench.__file__, "torch": torch.__file__,
                  "torch_version": version("torch")}))
"""


def test_install_into_an_existing_torch_environment(whl, tmp_path):
    py = _overlay_venv(tmp_path / "env")
    pip = [str(py), "-m", "pip", "--no-input", "--disable-pip-version-check"]

    # pip as on a user's machine: none of this machine's pip configuration (its index, and a
    # constraint file that caps torch at the CI version) applies.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*args], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)

    # What a plain `pip install` (with dependencies) would do here: install silc-bench alone,
    # keeping the environment's torch. Its dependencies are met, so pip needs no index.
    report = tmp_path / "report.json"
    dry = run(*pip, "install", "--dry-run", "--no-index", "-q", "--report", str(report), str(whl))
    assert dry.returncode == 0, dry.stderr
    would = sorted(i["metadata"]["name"] for i in json.loads(report.read_text())["install"])
    assert would == ["silc-bench"], would
    inst = run(*pip, "install", "--no-deps", "--no-index", "-q", str(whl))
    assert inst.returncode == 0, inst.stderr
    ours = run(str(py), "-c", CHECK_OURS)
    assert ours.returncode == 0, ours.stderr
    got = json.loads(ours.stdout)
    assert got["bad"] == [], got["bad"]
    assert got["silc_bench"].startswith(str(tmp_path / "env")), got  # the wheel, not the checkout
    assert got["torch"].startswith(sysconfig.get_paths()["purelib"]), got  # torch left as it was
    assert got["torch_version"] == CLUSTER_TORCH, got
    # pip's own view: nothing it reports concerns silc-bench (other packages installed
    # --no-deps for the parity tests, e.g. clip-benchmark, have their own unmet extras).
    check = run(*pip, "check")
    assert not [ln for ln in check.stdout.splitlines() if "silc-bench" in ln.lower()], check.stdout


def test_wheel_contents_and_a_run_from_another_folder(whl, tmp_path):
    names = set(zipfile.ZipFile(whl).namelist())
    for must in (
        "silc_bench/_bundled/checkpoints.yaml",
        "silc_bench/_bundled/tasks/zs-seg/_task.yaml",
        "silc_bench/_bundled/tasks/zs-seg/profiles/tcl.yaml",
        "silc_bench/_bundled/reports/paper/table1.yaml",
        "silc_bench/weights/silc-tiny.safetensors",
        "silc_bench/assets/model_configs/ShapesTiny-P8.json",
        "silc_bench/assets/classnames/imagenet.txt",
        "silc_bench/data/sources/ade20k.yaml",
        "silc_bench/data/clip_benchmark_wds.txt",
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
    assert demo.returncode == 0 and "21.94" in demo.stdout, demo.stderr
