"""How fast the CLI answers when it has nothing heavy to do: `--help`, a misspelt `--task`,
`list models`, `table 1 --paper`. Each command runs in a fresh process (as a user types it),
`--repeats` times; the median wall time is reported against the targets, beside the time
`import torch` alone takes on this machine (the floor a command that needs torch pays).

    python -m silc_bench.bench.cli_latency [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from silc_bench.bench.report import publish
from silc_bench.core.paths import REPO_ROOT

CASES = (  # (command, target seconds)
    (["--help"], 1.0),
    (["run", "--task", "zs-clss", "--model", "silc-tiny"], 1.0),
    (["list", "models"], 2.0),
    (["table", "1", "--paper"], 2.0),
)


def _median_s(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(REPO_ROOT / "reports" / "perf.md"))
    args = ap.parse_args()
    cli = [sys.executable, "-m", "silc_bench"]
    torch_s = _median_s([sys.executable, "-c", "import torch"], args.repeats)
    rows = ["| command | median wall time | target | met |", "|---|---|---|---|"]
    for argv, target in CASES:
        s = _median_s([*cli, *argv], args.repeats)
        met = "yes" if s < target else "no"
        rows.append(f"| `silc-bench {' '.join(argv)}` | {s:.2f} s | < {target:g} s | {met} |")
    text = "\n".join([
        "## CLI latency: answers that need no model",
        "",
        f"`python -m silc_bench.bench.cli_latency --repeats {args.repeats}`: each command in a fresh "
        f"process, the median of {args.repeats}. For scale, `python -c 'import torch'` alone takes "
        f"{torch_s:.2f} s here; none of these commands imports torch or mmseg "
        "(`tests/test_cli_imports.py` asserts it).",
        "",
        *rows,
    ])  # fmt: skip
    return publish(Path(args.out), text)


if __name__ == "__main__":
    raise SystemExit(main())
