"""`make demo`: the main job on the embedded default, with nothing downloaded.

Until the shipped, trained silc-tiny model exists, the default is `tiny-random` (a
seeded random open_clip ViT) on a generated imagefolder set, so the numbers sit near
chance: the demo shows the plumbing, the result file and the table, not a trained model.
"""

from __future__ import annotations

import sys
from pathlib import Path

from silc_bench.api import EvalOptions, evaluate
from silc_bench.cache import cache_root
from silc_bench.data.synthetic import make_imagefolder
from silc_bench.report import markdown_table

DEMO_MODEL = "tiny-random"


def run_demo(out: Path, progress: bool = True) -> int:
    data = cache_root() / "demo" / "shapes-demo"
    if not (data / "classnames.txt").is_file():
        print(f"generating the demo dataset in {data}", file=sys.stderr)
        make_imagefolder(data)
    dataset = f"imagefolder:{data}"
    opts = EvalOptions(out=out, device="cpu", batch_size=32, workers=0, progress=progress, force=True)
    outcome = evaluate(DEMO_MODEL, "zs-cls", dataset, opts)
    print(f"wrote {outcome.path}", file=sys.stderr)
    print(markdown_table([outcome.result]))
    print(
        f"\n{DEMO_MODEL} is a random model: its numbers sit near chance. "
        f"Next: silc-bench list models; silc-bench run --task zs-cls --model NAME --dataset ...",
        file=sys.stderr,
    )
    return 0
