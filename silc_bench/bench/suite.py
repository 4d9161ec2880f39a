"""The image-level suite of the paper's Table 1 for one checkpoint, with the cache and without.

zs-cls + fs-cls on one classification set and retrieval on one caption set: the
content-keyed cache encodes each split once (zs-cls and fs-cls share the eval split's
pass), and a re-run (`--force`) encodes nothing. Encoder calls are counted, not only
timed. Writes the "Image-level suite" section of reports/perf.md.

    python -m silc_bench.bench.suite [--model clip-tiny]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from silc_bench.bench.report import publish
from silc_bench.core.paths import REPO_ROOT

RUNS = (("zs-cls", "shapes-cls"), ("fs-cls", "shapes-cls"), ("retrieval", "shapes-retrieval"))


def _suite(
    model: str, out: Path, cache: bool, force: bool, runs: tuple = RUNS, profile: str | None = None
) -> tuple[float, int, int]:
    """(seconds, image encoder calls, images encoded) for `runs`."""
    from silc_bench.api import EvalOptions, LazyModel, evaluate
    from silc_bench.models.adapter import VLModel

    calls = {"n": 0, "images": 0}
    original = VLModel.image_features

    def counted(self, images):  # noqa: ANN001, ANN202
        calls["n"] += 1
        calls["images"] += len(images)
        return original(self, images)

    VLModel.image_features = counted
    try:
        opts = EvalOptions(
            out=out, device="cpu", workers=0, progress=False, cache=cache, force=force, profile=profile
        )
        lazy = LazyModel(model, opts)
        lazy.get()  # loading is not part of the comparison
        t0 = time.perf_counter()
        for task, ds in runs:
            evaluate(lazy, task, ds, opts)
        return time.perf_counter() - t0, calls["n"], calls["images"]
    finally:
        VLModel.image_features = original


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="clip-tiny")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO_ROOT / "reports" / "perf.md"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="silc-suite-"))
    os.environ["SILC_BENCH_CACHE"] = str(work / "cache")
    from silc_bench.data.generated import resolve_root

    resolve_root({"generated": "shapesworld"}, work)  # generate ShapesWorld outside the timing
    _suite(args.model, work / "warm", cache=False, force=True)  # first calls, data hashes: not timed
    best = {}
    for i in range(args.repeats):  # interleaved; the best of each, as this shared machine is noisy
        for name, cache, folder in (
            ("plain", False, "a"),
            ("first", True, f"b{i}"),
            ("again", True, f"b{i}"),
            ("templates", True, f"b{i}"),
        ):
            if name == "first":
                shutil.rmtree(work / "cache" / "features", ignore_errors=True)
            if name == "templates":  # zs-cls again with big_vision's 81 templates: new text, same images
                got = _suite(args.model, work / folder, True, True, RUNS[:1], "big_vision")
            else:
                got = _suite(args.model, work / folder, cache=cache, force=True)
            best[name] = min(best.get(name, got), got)
    plain, first, again, other = best["plain"], best["first"], best["again"], best["templates"]
    rows = [
        "| run | wall (s) | image encoder calls | images encoded | ratio |",
        "|---|---|---|---|---|",
        f"| no cache (`--no-cache`) | {plain[0]:.2f} | {plain[1]} | {plain[2]} | 1.00× |",
        f"| cache, first run | {first[0]:.2f} | {first[1]} | {first[2]} | "
        f"{plain[0] / first[0]:.2f}× faster |",
        f"| cache, re-run (`--force`) | {again[0]:.2f} | {again[1]} | {again[2]} | "
        f"{again[0] / first[0]:.2f}× the first run's time |",
        f"| cache, zs-cls with other templates (`--profile big_vision`) | {other[0]:.2f} | {other[1]} | "
        f"{other[2]} | {other[0] / first[0]:.2f}× the first run's time |",
    ]
    text = "\n".join(
        [
            "## Image-level suite (zs-cls + fs-cls + retrieval): the cache against no cache",
            "",
            f"Written by `python -m silc_bench.bench.suite --model {args.model} --repeats {args.repeats}` "
            "(best of the repeats, interleaved): zs-cls and fs-cls on "
            "shapes-cls (360 test + 360 train images) and retrieval on shapes-retrieval (200 images, "
            "1,000 captions); ShapesWorld generated, the data hashed and the model loaded beforehand "
            "(one untimed warm-up pass), CPU, "
            f"{platform.machine()}, {os.cpu_count()} cores.",
            "",
            *rows,
            "",
            "Without the cache, zs-cls and fs-cls each encode the 360 test images (fs-cls also the "
            "360 training images), so the test split is encoded twice. With it, every split is encoded "
            "once, and a forced re-run encodes nothing: it reads verified entries.",
            "",
            f"Goals from issue 11: ≥ 1.5× faster ({'met' if plain[0] / first[0] >= 1.5 else 'missed'}: "
            f"{plain[0] / first[0]:.2f}×), and a re-run ≤ 0.2× the first run "
            f"({'met' if again[0] / first[0] <= 0.2 else 'missed'}: {again[0] / first[0]:.2f}×; with other "
            f"templates {other[0] / first[0]:.2f}×). Other shots and seeds need no re-run: one fs-cls "
            "result holds every shot count and seed of its protocol. Other templates are new text to "
            "encode (36 classes × 81 prompts here), which on a tiny model costs about what its images "
            "do; on ViT-B/16 ImageNet's 81,000 prompts are 0.47 PFLOP against 6 PFLOP of images in the "
            "suite's first run (the Roofline section's FLOPs), under 0.1×.",
            "",
            "Why the first goal cannot be met by encoding each split once: the saving is the splits "
            "that more than one task encodes, and in this suite that is only the classification test "
            f"split. Here that caps the ratio at {plain[2]} / {first[2]} images = "
            f"{plain[2] / max(first[2], 1):.2f}× even if encoding were all of the time; on the paper's "
            "Table 1 splits it is 1.33× (without the cache: ImageNet val 50,000 for zs-cls, the 65,000 "
            "few-shot pool + val 50,000 for fs-cls, CIFAR-100 test 10,000, then train 50,000 + test "
            "10,000, COCO 5,000 = 240,000 images; with it 180,000). The rest of the gap is what every "
            "run pays once, not per image: the data fingerprints (a stat and a memo lookup per file), "
            "the checksum of each cache entry, the few-shot probe's solves and the retrieval ranking. "
            "On these tiny models that is a large share; on ViT-B/16 the encoder dominates and the "
            "ratio moves toward the cap. What the cache buys beyond one suite is the re-run row: other "
            "shots, seeds, templates or a forced re-run encode nothing.",
            "",
        ]
    )
    return publish(Path(args.out), text)


if __name__ == "__main__":
    raise SystemExit(main())
