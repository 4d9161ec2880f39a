"""The GPU half of `bench/gpu.sh`: image-encoding throughput through silc-bench's own model
path (precision, `--compile`) against the roofline, text encoding with `--text-encoding
trimmed` against `full` on ImageNet-shaped prompts, and torchrun across the GPUs present
compared with one process. Writes reports/perf-gpu.md. Refuses to run without CUDA (a CPU
number is not a GPU number), except as `--dry-run`: a tiny model on the CPU that runs every
step, so a broken script is found before the GPU time is spent.

    python -m silc_bench.bench.gpu [--batch 256] [--classes 100] [--out reports/perf-gpu.md] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from silc_bench.bench.random_model import load_random, random_checkpoint
from silc_bench.bench.report import publish, write_section
from silc_bench.bench.roofline import H200_BF16_FLOPS, flops
from silc_bench.core.errors import first_line
from silc_bench.core.paths import REPO_ROOT

DRY = "dry run on the CPU: checks that the script runs, measures nothing"
TEXT_BATCH = 256  # prompts a forward, as zs-cls encodes them (features/extract.py)


def _throughput(arch: str, weights: Path, device: str, precision: str, compile_: bool, args) -> tuple:  # noqa: ANN001
    """(images/s, compile took effect) of `VLModel.image_features` on random pixels already
    on the device: the tower, autocast and the float32 copy-out, without data loading."""
    from silc_bench.models.execution import Execution, apply

    model = load_random(arch, device, weights.parent, precision, path=weights)
    apply(model, Execution(compile=compile_))
    size = model.preprocess.size
    x = torch.randn(args.batch, 3, size, size, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        for _ in range(3):  # warm-up (and compilation)
            model.image_features(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            model.image_features(x)
        sync()
    took = model.execution.compile.get("took_effect") if compile_ else None
    return args.steps * args.batch / (time.perf_counter() - t0), took, size


def _encoding(args: argparse.Namespace, device: str, tmp: Path) -> tuple[str, bool]:
    weights = random_checkpoint(args.arch, tmp)
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({DRY})"
    rows = [
        "| precision | --compile | took effect | images/s | TFLOP/s | share of the ~790 TFLOP/s bf16 bound |",
        "|---|---|---|---|---|---|",
    ]
    per_image = None
    failed = False
    for precision, comp in (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)):
        try:
            ips, took, size = _throughput(args.arch, weights, device, precision, comp, args)
        except Exception as e:  # noqa: BLE001 - a row that failed (a compiler missing) is reported, not fatal
            first = first_line(e) or type(e).__name__
            rows.append(f"| {precision} | {'yes' if comp else 'no'} | **failed** | {first[:200]} | | |")
            failed = True
            continue
        per_image = per_image or flops(args.arch, size)
        took_s = "—" if took is None else ("yes" if took else "**no**")
        rows.append(
            f"| {precision} | {'yes' if comp else 'no'} | {took_s} | {ips:,.0f} | "
            f"{ips * per_image / 1e12:.1f} | {ips * per_image / H200_BF16_FLOPS:.1%} |"
        )
    text_rows, text_ok = _text(args, device, weights)
    heading = f"## {args.arch} image and text encoding" + (" (dry run)" if args.dry_run else "")
    text = "\n".join(
        [
            heading,
            "",
            f"Written by `python -m silc_bench.bench.gpu{' --dry-run' if args.dry_run else ''}` on {name}: "
            f"`VLModel.image_features` (silc-bench's own path: autocast, compile, float32 out) on "
            f"random pixels already on the device, batch {args.batch}, {args.steps} timed steps after 3 "
            f"warm-up steps, random weights, "
            + (f"{per_image / 1e9:.2f} GFLOP per image (torch.utils.flop_counter)." if per_image else ""),
            "",
            *rows,
            "",
            *text_rows,
            "",
        ]
    )
    return text, not failed and text_ok


def _text_rate(model, batches: list[torch.Tensor], device: str, mode: str) -> tuple[float, torch.Tensor]:  # noqa: ANN001
    """(prompts/s, embeddings) of `VLModel.encode_text` with `--text-encoding MODE` on token
    batches made beforehand, after one warm-up batch."""
    model.text_encoding = mode
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    model.encode_text(batches[0])
    sync()
    t0 = time.perf_counter()
    out = torch.cat([model.encode_text(b) for b in batches])
    sync()
    return sum(len(b) for b in batches) / (time.perf_counter() - t0), out


def _text(args: argparse.Namespace, device: str, weights: Path) -> tuple[list[str], bool]:
    """Rows: each precision, `--text-encoding trimmed` against `full`, and how far apart their
    normalised embeddings are (the CPU's exactness guard, tests/test_text_encoding.py, allows
    1e-6 at fp32; here the GPU's kernels are shown against it, not held to it). A failure is a
    row that did not run or a tower that was not trimmed."""
    from silc_bench.features.prompts import read_asset
    from silc_bench.models.text_encoding import normalised_gap

    names = read_asset("classnames", "imagenet")[: args.classes]
    templates = read_asset("templates", "imagenet")
    prompts = [t.replace("{c}", c) for c in names for t in templates]
    rows = [
        f"Text encoding, `VLModel.encode_text` on {len(names)} ImageNet class names × {len(templates)} "
        f"templates ({len(prompts):,} prompts), {TEXT_BATCH} a forward as zs-cls encodes them, "
        "tokenized beforehand; the gap is the largest difference in the normalised embeddings:",
        "",
        "| --text-encoding | precision | used | prompts/s | speed-up | max gap | within the CPU's 1e-6 |",
        "|---|---|---|---|---|---|---|",
    ]
    ok = True
    for precision in ("fp32", "bf16"):
        try:
            model = load_random(args.arch, device, weights.parent, precision, path=weights)
            batches = [
                model.tokenize(prompts[s : s + TEXT_BATCH]) for s in range(0, len(prompts), TEXT_BATCH)
            ]
            rate, emb = {}, {}
            for mode in ("full", "trimmed"):
                rate[mode], emb[mode] = _text_rate(model, batches, device, mode)
            used = model.text_encoding_used
        except Exception as e:  # noqa: BLE001 - reported in its row, as the image rows are
            rows.append(
                f"| both | {precision} | **failed** | {(first_line(e) or type(e).__name__)[:200]} | | | |"
            )
            ok = False
            continue
        gap = normalised_gap(emb["trimmed"], emb["full"])
        ok = ok and used == "trimmed"
        within = ("yes" if gap <= 1e-6 else "**no**") if precision == "fp32" else "— (bf16)"
        rows += [
            f"| full | {precision} | full | {rate['full']:,.0f} | 1.00× | | |",
            f"| trimmed | {precision} | {used} | {rate['trimmed']:,.0f} | "
            f"{rate['trimmed'] / rate['full']:.2f}× | {gap:.1e} | {within} |",
        ]
    return rows, ok


def _run_cli(cmd: list[str], out: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"bench.gpu: {' '.join(cmd[:8])} ... failed:\n{proc.stderr[-4000:]}")
    (res,) = list(out.rglob("*.json"))
    data = json.loads(res.read_text())
    return {"wall": time.perf_counter() - t0, "metrics": data["metrics"], "world": data.get("world_size", 1)}


def _torchrun(n: int, device: str, tmp: Path) -> tuple[str, bool]:
    """zs-cls on a shipped model: one plain process against `torchrun` with n ranks (NCCL on
    CUDA, gloo on the CPU). With one GPU the launcher runs one rank, which makes no process
    group; the section says so rather than claim NCCL was exercised."""

    def args(out: Path) -> list[str]:
        return [
            "run", "--task", "zs-cls", "--model", "silc-tiny", "--dataset", "shapes-cls", "--out",
            str(out), "--quiet", "--no-cache", "--device", device,
        ]  # fmt: skip

    one = _run_cli([sys.executable, "-m", "silc_bench", *args(tmp / "one")], tmp / "one")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)]
    many = _run_cli([*launcher, "-m", "silc_bench", *args(tmp / "many")], tmp / "many")
    same = one["metrics"] == many["metrics"] and many["world"] == n
    group = "NCCL" if device == "cuda" else "gloo"
    if n == 1:  # torchrun with one rank runs as one process: no process group is made
        group = f"one rank, so no process group: {group} needs 2 or more GPUs to be exercised"
    text = "\n".join(
        [
            "## torchrun on the GPUs present" + (" (dry run)" if device == "cpu" else ""),
            "",
            f"zs-cls, silc-tiny on shapes-cls, cache off: 1 process {one['wall']:.1f} s, torchrun with "
            f"{n} rank(s) ({group}) {many['wall']:.1f} s (whole command, start-up included; world_size "
            f"recorded: {many['world']}). Metrics identical: {'yes' if same else 'NO'}.",
            "",
        ]
    )
    return text, same


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--arch", default="ViT-B-16")
    ap.add_argument(
        "--classes", type=int, default=100, help="ImageNet class names for the text rows (x 80 templates)"
    )
    ap.add_argument("--out", default=str(REPO_ROOT / "reports" / "perf-gpu.md"))
    ap.add_argument("--dry-run", action="store_true", help=DRY)
    args = ap.parse_args()
    if args.dry_run:
        device, n = "cpu", 2
        args.arch, args.batch, args.steps, args.classes = "ViT-Tiny-P8", 4, 2, 4
        os.environ.setdefault("SILC_BENCH_COMPILE_BACKEND", "eager")  # dynamo capture, no C++ build
    elif not torch.cuda.is_available():
        print(
            "bench.gpu: no CUDA device: this benchmark measures GPUs only (--dry-run checks it)",
            file=sys.stderr,
        )
        return 1
    else:
        device, n = "cuda", torch.cuda.device_count()
    out = Path(args.out)
    tmp = Path(tempfile.mkdtemp(prefix="silc-gpu-"))
    text, encoded = _encoding(args, device, tmp)
    write_section(out, text)
    text, same = _torchrun(n, device, tmp)
    publish(out, text)
    return 0 if same and encoded else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "4")
    raise SystemExit(main())
