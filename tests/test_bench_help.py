"""Every benchmark's `--help` prints its usage and exits, measuring and writing nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from silc_bench.core.paths import PACKAGE_DIR

BENCHES = sorted(p.stem for p in (PACKAGE_DIR / "bench").glob("*.py")
                 if p.stem not in ("__init__", "report", "random_model"))  # fmt: skip


@pytest.mark.parametrize("bench", BENCHES)
def test_a_benchmarks_help_measures_nothing(bench, tmp_path):
    perf = PACKAGE_DIR.parent / "reports" / "perf.md"
    before = perf.read_bytes() if perf.is_file() else None
    proc = subprocess.run([sys.executable, "-m", f"silc_bench.bench.{bench}", "--help"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0 and "usage" in proc.stdout.lower(), proc.stdout + proc.stderr
    assert (perf.read_bytes() if perf.is_file() else None) == before


def test_every_benchmark_is_covered():
    """The glob above finds each benchmark module; these are the ones issue 19 changed."""
    assert {"suite", "gpu", "vs_clip_benchmark", "roofline", "cli_latency"} <= set(BENCHES)
