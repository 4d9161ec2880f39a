"""End-to-end runs through the CLI on tiny models and generated data in the real layouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from silc_bench.cli import main

REQUIRED = {
    "schema_version",
    "model",
    "checkpoint_sha256",
    "task",
    "task_version",
    "dataset",
    "dataset_fingerprint",
    "protocol",
    "metrics",
    "variant",
    "seeds",
    "precision",
    "package_version",
    "git_commit",
    "env",
    "wall_s",
    "created",
}


def one_json(folder: Path) -> Path:
    """The one result file in a folder (imagefolder results carry a hash of their path)."""
    (path,) = folder.glob("imagefolder-shapes-*.json")
    return path


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def common(data_root: Path, out: Path) -> list[str]:
    return [
        "--data-root",
        str(data_root),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        "--workers",
        "0",
        "--batch-size",
        "16",
    ]


def test_zs_cls_imagefolder_with_open_clip_weights(trained_weights, data_root, tmp_path, capsys):
    ds = f"imagefolder:{data_root / 'shapes'}"
    code, out, err = run(
        [
            "run",
            "--task",
            "zs-cls",
            "--model",
            "open_clip:ViT-Tiny-P8",
            "--weights",
            str(trained_weights),
            "--dataset",
            ds,
            *common(data_root, tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    path = one_json(tmp_path / "open_clip@ViT-Tiny-P8" / "zs-cls")
    res = json.loads(path.read_text())
    assert REQUIRED <= set(res)
    assert res["protocol"]["num_classes"] == 5 and res["protocol"]["num_images"] == 30
    assert res["protocol"]["preprocess"]["size"] == 32
    assert res["protocol"]["templates"] == "dataset"  # templates.txt was used
    assert set(res["per_class"]) == {
        "blue triangle",
        "green square",
        "purple square",
        "red circle",
        "yellow circle",
    }
    assert "| open_clip:ViT-Tiny-P8" in out and "top1" in out  # markdown table on stdout
    assert len(res["checkpoint_sha256"]) == 64

    # skip-existing, then --force
    mtime = path.stat().st_mtime_ns
    code, out, err = run(
        [
            "run",
            "--task",
            "zs-cls",
            "--model",
            "open_clip:ViT-Tiny-P8",
            "--weights",
            str(trained_weights),
            "--dataset",
            ds,
            *common(data_root, tmp_path),
        ],
        capsys,
    )
    assert code == 0 and "skipped" in err and path.stat().st_mtime_ns == mtime
    code, out, err = run(
        [
            "run",
            "--task",
            "zs-cls",
            "--model",
            "open_clip:ViT-Tiny-P8",
            "--weights",
            str(trained_weights),
            "--dataset",
            ds,
            "--force",
            *common(data_root, tmp_path),
        ],
        capsys,
    )
    assert code == 0 and path.stat().st_mtime_ns != mtime
    again = json.loads(path.read_text())
    assert again["metrics"] == res["metrics"]
    assert again["env"]["cache"]["hits"] == 2  # text and image features came from the cache


def test_all_tasks_and_layouts(data_root, tmp_path, capsys):
    """tiny-random on every registered dataset layout: imagenet, cifar100, coco, flickr30k."""
    for task, datasets in (
        ("zs-cls", "imagenet,cifar100"),
        ("fs-cls", "imagenet,cifar100"),
        ("retrieval", "coco,flickr30k"),
    ):
        code, out, err = run(
            [
                "run",
                "--task",
                task,
                "--model",
                "tiny-random",
                "--dataset",
                datasets,
                *common(data_root, tmp_path),
            ],
            capsys,
        )
        assert code == 0, err
    d = tmp_path / "tiny-random"
    inet = json.loads((d / "zs-cls" / "imagenet.json").read_text())
    assert inet["protocol"]["num_classes"] == 1000 and inet["protocol"]["num_templates"] == 80
    assert inet["protocol"]["num_images"] == 6
    cifar = json.loads((d / "zs-cls" / "cifar100.json").read_text())
    assert cifar["protocol"]["num_templates"] == 18 and cifar["protocol"]["num_images"] == 100
    fs = json.loads((d / "fs-cls" / "imagenet.json").read_text())
    assert {"1shot_top1", "1shot_top1_seed2"} <= set(fs["metrics"])  # 3 images a class
    assert fs["protocol"]["shots_left_out"] == [5, 10, 25]
    assert any("994 classes have no training images" in n for n in fs["notes"])
    assert fs["protocol"]["train_per_class"] == 65 and fs["seeds"] == [0, 1, 2]
    # 3 training images a class: the 5-, 10- and 25-shot probes would be the 3-shot one
    # under larger names, so they are left out and said so, never drawn short
    fs_c = json.loads((d / "fs-cls" / "cifar100.json").read_text())
    assert fs_c["protocol"]["shots_drawn"] == [1] and fs_c["protocol"]["shots_left_out"] == [5, 10, 25]
    assert not any(k.startswith(("5shot", "10shot", "25shot")) for k in fs_c["metrics"])
    assert any("5-shot, 10-shot, 25-shot left out: the smallest class has 3" in n for n in fs_c["notes"])
    assert fs["env"]["cache"]["hits"] >= 1  # val features shared with zs-cls
    coco = json.loads((d / "retrieval" / "coco.json").read_text())
    assert coco["protocol"]["num_images"] == 12 and coco["protocol"]["num_captions"] == 12 * 5 + 4
    assert set(coco["metrics"]) == {f"{d}_recall@{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)}
    flickr = json.loads((d / "retrieval" / "flickr30k.json").read_text())
    assert flickr["protocol"]["num_images"] == 10


def test_limit_and_precision_recorded(data_root, tmp_path, capsys):
    code, _, err = run(
        [
            "run",
            "--task",
            "retrieval",
            "--model",
            "tiny-random",
            "--dataset",
            "coco",
            "--limit",
            "4",
            "--precision",
            "bf16",
            *common(data_root, tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    res = json.loads((tmp_path / "tiny-random" / "retrieval" / "coco+limit-4+bf16.json").read_text())
    assert res["protocol"]["limit"] == 4 and res["protocol"]["num_images"] == 4
    assert res["precision"] == "bf16"


def test_list_commands(capsys):
    for what, needle in (("tasks", "zs-cls"), ("models", "silc-b16"), ("datasets", "cifar100")):
        code, out, _ = run(["list", what], capsys)
        assert code == 0 and needle in out
    _, out, _ = run(["list", "models"], capsys)
    for name in (
        "silc-b8",
        "silc-l16",
        "silc-star-b16",
        "silc-star-b8",
        "silc-star-l16",
        "clip-webli-b16",
        "clip-webli-l16",
        "tcl-b16",
        "pacl-b16",
        "openai-clip-b16",
    ):
        assert name in out


def test_python_dash_m_and_exit_codes(tmp_path):
    """A real process: exit code 2, one line on stderr, no traceback; --debug shows it."""
    env = {**os.environ}
    p = subprocess.run(
        [sys.executable, "-m", "silc_bench", "run", "--task", "zscls", "--model", "tiny-random"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr
    assert "did you mean 'zs-cls'" in p.stderr.lower()
    p = subprocess.run(
        [sys.executable, "-m", "silc_bench", "--debug", "run", "--task", "zscls", "--model", "tiny-random"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode != 0 and "Traceback" in p.stderr
    p = subprocess.run(
        [sys.executable, "-m", "silc_bench", "run", "--task", "zscls", "--model", "tiny-random", "--debug"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode != 0 and "Traceback" in p.stderr  # --debug after the subcommand too
