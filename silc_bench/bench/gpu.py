"""The GPU half of `bench/gpu.sh`: image-encoding throughput against the roofline, and
torchrun across the GPUs present, each compared with one process. Writes
reports/perf-gpu.md. Refuses to run without CUDA (a CPU number is not a GPU number).

    python -m silc_bench.bench.gpu [--batch 256] [--out reports/perf-gpu.md]
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

from silc_bench.bench.report import publish, write_section
from silc_bench.bench.roofline import H200_BF16_FLOPS, count
from silc_bench.config import REPO_ROOT


def _throughput(precision: str, compile_: bool, batch: int, steps: int = 10) -> float:
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16", pretrained=None, load_weights=False).eval().cuda()
    fn = torch.compile(model.encode_image) if compile_ else model.encode_image
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    ctx = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if precision == "bf16"
        else torch.autocast("cuda", enabled=False)
    )
    with torch.no_grad(), ctx:
        for _ in range(3):  # warm-up (and compilation)
            fn(x)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn(x)
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def _torchrun(n: int, out: Path) -> dict:
    args = [
        "run",
        "--task",
        "zs-cls",
        "--model",
        "silc-tiny",
        "--dataset",
        "shapes-cls",
        "--out",
        str(out),
        "--quiet",
        "--no-cache",
        "--device",
        "cuda",
    ]
    cmd = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(n),
            "-m",
            "silc_bench",
            *args,
        ]
        if n > 1
        else [sys.executable, "-m", "silc_bench", *args]
    )
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (res,) = list(out.rglob("*.json"))
    return {"wall": wall, "metrics": json.loads(res.read_text())["metrics"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out", default=str(REPO_ROOT / "reports" / "perf-gpu.md"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench.gpu: no CUDA device: this benchmark measures GPUs only", file=sys.stderr)
        return 1
    out = Path(args.out)
    name = torch.cuda.get_device_name(0)
    flops = count()["image_224"]
    rows = [
        "| precision | compile | images/s | TFLOP/s | share of ~790 TFLOP/s bf16 bound |",
        "|---|---|---|---|---|",
    ]
    for precision, comp in (("fp32", False), ("bf16", False), ("bf16", True)):
        ips = _throughput(precision, comp, args.batch)
        rows.append(
            f"| {precision} | {'yes' if comp else 'no'} | {ips:,.0f} | {ips * flops / 1e12:.0f} "
            f"| {ips * flops / H200_BF16_FLOPS:.0%} |"
        )
    write_section(
        out,
        "ViT-B/16 image encoding",
        "\n".join(
            [
                "## ViT-B/16 image encoding",
                "",
                f"Written by `python -m silc_bench.bench.gpu` on {name}, batch {args.batch}, random weights, "
                f"{flops / 1e9:.1f} GFLOP per 224² image (torch.utils.flop_counter).",
                "",
                *rows,
                "",
            ]
        ),
    )
    n = torch.cuda.device_count()
    tmp = Path(tempfile.mkdtemp())
    one = _torchrun(1, tmp / "one")
    many = _torchrun(n, tmp / "many") if n > 1 else one
    same = one["metrics"] == many["metrics"]
    text = "\n".join(
        [
            "## torchrun on the GPUs present",
            "",
            f"zs-cls, silc-tiny on shapes-cls, cache off: 1 process {one['wall']:.1f} s, "
            f"{n} processes {many['wall']:.1f} s (whole command, start-up included). "
            f"Metrics identical: {'yes' if same else 'NO'}.",
            "",
        ]
    )
    publish(out, "torchrun on the GPUs present", text)
    return 0 if same else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "4")
    raise SystemExit(main())
