"""The GPU fast-path options, on the CPU: recorded, and the same numbers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from silc_bench.cli import main
from silc_bench.features.extract import _forward_halving_on_oom
from silc_bench.models.execution import ExecutionRecord
from tests.fixtures import run_args


def _res(folder):
    (path,) = list(folder.rglob("*.json"))
    return json.loads(path.read_text())


@pytest.mark.parametrize("flag", ["--compile", "--channels-last"])
def test_fast_path_flags_are_recorded_and_change_no_number(flag, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SILC_BENCH_COMPILE_BACKEND", "eager")  # dynamo capture, no C++ build
    plain, fast = tmp_path / "plain", tmp_path / "fast"
    assert main(run_args("zs-cls", "tiny-random", "shapes-cls", plain, tmp_path / "d", "--no-cache")) == 0
    assert (
        main(run_args("zs-cls", "tiny-random", "shapes-cls", fast, tmp_path / "d", "--no-cache", flag)) == 0
    )
    capsys.readouterr()
    a, b = _res(plain), _res(fast)
    assert a["metrics"] == b["metrics"]
    ex = b["env"]["execution"]
    if flag == "--compile":
        assert (
            ex["compile"]["requested"]
            and ex["compile"]["took_effect"]
            and ex["compile"]["backend"] == "eager"
        )
        assert b["run_key"]["execution"] == {"compile": "eager"}  # the backend is in the key
    else:
        assert ex["channels_last"] is True and b["run_key"]["execution"] == {"channels_last": True}
    assert "execution" not in a["run_key"]  # default runs keep the keys they always had


def test_cuda_out_of_memory_halves_the_batch_and_counts_it():
    calls = []

    def image_features(x):
        calls.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return {"embed": x.flatten(1)[:, :3] * 2}

    model = SimpleNamespace(image_features=image_features, execution=ExecutionRecord(started=True))
    x = torch.randn(7, 3, 4, 4)
    out = _forward_halving_on_oom(model, x)
    assert torch.equal(out["embed"], x.flatten(1)[:, :3] * 2)  # every image, in order
    # 7 ran out, then 3; the 4 after them went straight to the remembered size, 2
    assert model.execution.oom_halvings == 2 and max(c for c in calls if c <= 2) == 2
    assert model.execution.oom_batch_cap == 2
    calls.clear()
    again = _forward_halving_on_oom(model, x)  # a later batch: no new out-of-memory
    assert torch.equal(again["embed"], out["embed"]) and max(calls) == 2
    assert model.execution.oom_halvings == 2


def test_the_gpu_check_refuses_to_run_without_a_gpu():
    import subprocess

    from silc_bench.core.paths import REPO_ROOT

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: gpu.sh would measure it")
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "silc_bench/bench/gpu.sh")], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "no CUDA GPU" in proc.stderr
    assert not (REPO_ROOT / "reports" / "perf-gpu.md.tmp").exists()


@pytest.mark.slow  # about 85 s on 2 cores (six processes, each importing torch): `make test-all`
def test_the_gpu_check_dry_run_runs_every_step_on_the_cpu(tmp_path):
    """`gpu.sh --dry-run`: every step of the prepared GPU check, on the CPU with a tiny model,
    so a broken script shows here and not after the GPU time is spent. The file it writes
    holds each section, labelled a dry run, with the comparisons that must hold."""
    import os
    import subprocess
    import sys

    from silc_bench.core.paths import REPO_ROOT

    out = tmp_path / "perf-gpu.md"
    env = {**os.environ, "GPU_CHECK_OUT": str(out), "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "silc_bench/bench/gpu.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Performance on a GPU: DRY RUN")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert len(headings) == 6 and all("dry run" in h for h in headings), headings
    assert "--device cpu --models pacl-tiny` (exit 0)" in text  # the regression step's own table
    assert text.count("Predictions identical: yes") == 2  # one and 8 windows per forward
    assert "Metrics identical: yes" in text and "world_size recorded: 2" in text
    assert "Metrics agree (top-1; t2i recall@1/5/10 to 1e-4): yes" in text
    rows = [
        [c.strip() for c in line.split("|")[1:4]]
        for line in text.splitlines()
        if line.startswith(("| fp32", "| bf16"))
    ]
    assert sorted(rows) == [
        ["bf16", "no", "—"],
        ["bf16", "yes", "yes"],
        ["fp32", "no", "—"],
        ["fp32", "yes", "yes"],
    ]
    assert (
        not (REPO_ROOT / "reports" / "perf-gpu.md").exists()
        or "DRY RUN" not in (REPO_ROOT / "reports" / "perf-gpu.md").read_text()
    )


def test_decode_on_the_device_matches_the_pil_path_on_the_cpu(tmp_path, capsys):
    """JPEG bytes decoded by torchvision (nvJPEG on CUDA; here the CPU) give PIL's pixels; the
    tensor resize differs from PIL's filter by little, and the option is recorded and keyed."""
    import io

    import numpy as np
    from PIL import Image

    from silc_bench.data.gpu_decode import decode
    from silc_bench.data.synthetic import make_imagefolder

    root = make_imagefolder(tmp_path / "imgs", n_train=2, n_test=4, size=80)
    for png in list(root.rglob("*.png")):  # the same images as JPEG files
        Image.open(png).convert("RGB").save(png.with_suffix(".jpg"), "JPEG", quality=92)
        png.unlink()
    some = next(root.rglob("*.jpg"))
    raw = some.read_bytes()
    pil = np.array(Image.open(io.BytesIO(raw)).convert("RGB"))
    ours = decode([torch.frombuffer(bytearray(raw), dtype=torch.uint8)], torch.device("cpu"))[0]
    assert np.array_equal(ours.permute(1, 2, 0).numpy(), pil)  # identical decoded pixels

    def base(out: str) -> list[str]:
        return run_args(
            "zs-cls", "silc-tiny", f"imagefolder:{root}", tmp_path / out, tmp_path / "d", "--no-cache"
        )

    assert main(base("cpu")) == 0
    assert main([*base("gpu"), "--decode", "gpu"]) == 0
    capsys.readouterr()
    a, b = _res(tmp_path / "cpu"), _res(tmp_path / "gpu")
    assert b["env"]["execution"]["decode"] == "gpu" and b["env"]["execution"]["decoded_on"] == "cpu"
    assert b["run_key"]["execution"] == {"decode": "gpu"} and "execution" not in a["run_key"]
    mixed = next(root.rglob("*.jpg"))  # one PNG among the JPEGs: the whole split goes through PIL
    Image.open(mixed).save(mixed.with_suffix(".png"))
    mixed.unlink()
    assert main([*base("mixed"), "--decode", "gpu"]) == 0
    capsys.readouterr()
    assert "decode_fallback" in _res(tmp_path / "mixed")["env"]["execution"]
    n = a["protocol"]["num_images"]
    assert abs(a["metrics"]["top1"] - b["metrics"]["top1"]) <= 100 / n + 1e-9  # at most one image flips
