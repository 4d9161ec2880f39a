"""A fuzzing pass over the CLI: a table of hostile inputs, each held to the same promise.

For every case: the exit code; one line on stderr and no traceback; no file left in
`--out` and no cache entry a later run would misread; and a clean run afterwards, in the
same `--out` and cache, gives the clean numbers.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from silc_bench.cli import main
from tests import fixtures, seg_fixtures

pytestmark = pytest.mark.usefixtures("one_thread")

Setup = Callable[[Path, Path], list[str]]  # (case folder, clean dataset) -> extra args / dataset


def base_args(out: Path, *extra: str, dataset: str) -> list[str]:
    return fixtures.run_args("zs-cls", "tiny-random", dataset, out, out.parent, *extra)


def _copy(src: Path, where: Path) -> Path:
    dst = where / "copy" / src.name
    shutil.copytree(src, dst)
    return dst


def _weights_file(where: Path, payload: object, protocol: int | None = None) -> str:
    path = where / "w.pt"
    if protocol is None:
        torch.save(payload, str(path))
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=protocol)
    return str(path)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _dataset(where: Path, src: Path, edit: Callable[[Path], None]) -> list[str]:
    d = _copy(src, where)
    edit(d)
    return ["--dataset", f"imagefolder:{d}"]


def _truncate_first_png(d: Path) -> None:
    p = sorted(d.rglob("*.png"))[0]
    p.write_bytes(p.read_bytes()[:40])


def _float_tif(d: Path) -> None:
    p = sorted(d.rglob("*.png"))[0]
    Image.fromarray(np.zeros((8, 8), np.float32)).save(p.with_suffix(".tif"))
    p.unlink()


def _broken_link(d: Path) -> None:
    (d / "test" / "zz").symlink_to(d / "nowhere")


def _tiny_oc(where: Path, weights: str) -> list[str]:
    return ["--model", "open_clip:ViT-Tiny-P8", "--weights", weights]


# (id, setup → extra args (a later --dataset/--model overrides the clean one), code, needles)
CASES: list[tuple[str, Setup, int, tuple[str, ...]]] = [
    ("out-is-a-file", lambda w, s: ["--out", str(_touch(w / "file"))], 2, ("--out",)),
    ("out-under-a-file", lambda w, s: ["--out", str(_touch(w / "file") / "sub")], 2, ("--out",)),
    (
        "empty-templates",
        lambda w, s: _dataset(w, s, lambda d: (d / "templates.txt").write_text("\n")),
        2,
        ("no templates",),
    ),
    ("truncated-image", lambda w, s: _dataset(w, s, _truncate_first_png), 2, ("cannot decode image",)),
    ("float-image", lambda w, s: _dataset(w, s, _float_tif), 2, ("pixel mode",)),
    ("broken-symlink-class", lambda w, s: _dataset(w, s, _broken_link), 2, ("broken symlink",)),
    ("empty-dataset-list", lambda w, s: ["--dataset", ","], 2, ("empty dataset name",)),
    ("limit-zero", lambda w, s: ["--limit", "0"], 2, ("--limit",)),
    ("dense-mode-on-zs-cls", lambda w, s: ["--dense-mode", "sclip"], 2, ("--dense-mode", "zs-cls")),
    ("pamr-on-zs-cls", lambda w, s: ["--pamr"], 2, ("--pamr",)),
    ("save-predictions-on-zs-cls", lambda w, s: ["--save-predictions"], 2, ("--save-predictions",)),
    ("device-cuda-7", lambda w, s: ["--device", "cuda:7"], 2, ("cuda:7",)),
    ("device-unknown", lambda w, s: ["--device", "tpu"], 2, ("--device",)),
    ("batch-size-zero", lambda w, s: ["--batch-size", "0"], 2, ("--batch-size",)),
    (
        "bomb-limit",
        lambda w, s: ["--max-image-pixels", "1000"],
        2,
        ("decompression-bomb", "--max-image-pixels"),
    ),
    ("weights-is-a-folder", lambda w, s: _tiny_oc(w, str(w)), 2, ("is a folder",)),
    ("weights-missing", lambda w, s: _tiny_oc(w, str(w / "absent.pt")), 2, ("not found",)),
    (
        "weights-code-pickle",
        lambda w, s: _tiny_oc(w, _weights_file(w, {"x": _Payload()})),
        2,
        ("posix.system",),
    ),
    (
        "weights-protocol-5",
        lambda w, s: _tiny_oc(w, _weights_file(w, {"x": torch.zeros(2)}, protocol=5)),
        2,
        ("refused to load",),
    ),
    ("weights-empty-file", lambda w, s: _tiny_oc(w, str(_touch(w / "w.safetensors"))), 2, ("corrupt",)),
    ("unknown-protocol", lambda w, s: ["--protocol", "nope"], 2, ("protocol profile",)),
    (
        "missing-data-root",
        lambda w, s: ["--dataset", "cifar100", "--data-root", str(w / "none")],
        2,
        ("not found",),
    ),
]


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("")
    return p


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict]:
    """The clean dataset and its clean numbers, from a fresh out and cache."""
    root = tmp_path_factory.mktemp("fuzz")
    src = fixtures.imagefolder(root / "base", n_train=1, n_test=2, size=32)
    out = root / "clean"
    assert main(base_args(out, dataset=f"imagefolder:{src}")) == 0
    (path,) = out.rglob("*.json")
    return src, json.loads(path.read_text())["metrics"]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def _override(args: list[str], extra: list[str]) -> list[str]:
    """`args` with each flag that `extra` gives replaced: list flags add up when repeated
    (cli/flags.py), so a case's --dataset or --model must take the clean one's place."""
    given = {a for a in extra if a.startswith("--")}
    out, skip = [], False
    for a in args:
        if skip and not a.startswith("--"):
            continue
        skip = a in given and a in ("--dataset", "--model", "--task")
        if not skip:
            out.append(a)
    return [*out, *extra]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(case, clean, tmp_path, monkeypatch, capsys):
    name, setup, code, needles = case
    src, clean_metrics = clean
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # --max-image-pixels
    out = tmp_path / "out"
    clean_args = base_args(out, dataset=f"imagefolder:{src}")
    if name in ("limit-zero", "device-cuda-7"):  # the result exists: still refused
        assert main(clean_args) == 0
    capsys.readouterr()
    before, cache_before = _files(out), _files(tmp_path / "cache" / "features")
    (tmp_path / "case").mkdir()
    got = main(_override(clean_args, setup(tmp_path / "case", src)))
    err = capsys.readouterr().err
    assert got == code, err
    assert err.startswith("silc-bench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "Warning" not in err and "weights_only=False" not in err, err
    for n in needles:
        assert n in err, err
    assert _files(out) == before, "files left in --out"
    assert _files(tmp_path / "cache" / "features") <= cache_before | _files(tmp_path / "cache" / "features")
    assert main(clean_args) == 0
    err = capsys.readouterr().err
    assert "failed verification" not in err
    (path,) = out.rglob("*.json")
    assert json.loads(path.read_text())["metrics"] == clean_metrics


def test_garbage_result_file_is_replaced_not_served(clean, tmp_path, monkeypatch, capsys):
    src, clean_metrics = clean
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    args = base_args(out, dataset=f"imagefolder:{src}")
    assert main(args) == 0
    (path,) = out.rglob("*.json")
    for garbage in ("not json", "[1, 2]", '{"schema_version": 2}'):
        path.write_text(garbage)
        assert main(args) == 0
        assert "unreadable" in capsys.readouterr().err
        assert json.loads(path.read_text())["metrics"] == clean_metrics


def test_cli_gaps_and_rounding(clean, data_root, tmp_path, monkeypatch, capsys):
    src, clean_metrics = clean
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    ds = f"imagefolder:{src}"
    out = tmp_path / "out"
    assert main(base_args(out, dataset=f"{ds}")) == 0
    table = capsys.readouterr().out
    twice = [*base_args(tmp_path / "o2", dataset="cifar100,cifar100"), "--data-root", str(data_root)]
    assert main([*twice, "--limit", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("| cifar100") == 1 and captured.err.count(".json") == 1
    (path,) = out.rglob("*.json")
    for v in json.loads(path.read_text())["metrics"].values():
        assert round(v, 4) == v
    assert "top1" in table


def test_big_image_warns_once(clean, tmp_path, monkeypatch, capsys):
    src, clean_metrics = clean
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    args = base_args(tmp_path / "out", "--max-image-pixels", "1500", dataset=f"imagefolder:{src}")
    assert main(args) == 0  # 32x32 = 1024 pixels: over the warning size (750), under the limit
    err = capsys.readouterr().err
    assert err.count("silc-bench: warning") == 1 and "image-size warning" in err


def test_interrupted_predictions_are_cleaned_and_bars_closed(tmp_path, monkeypatch, capsys):
    from tqdm import tqdm

    from silc_bench.cli.main import _close_progress_bars

    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    root = seg_fixtures.make_all(tmp_path / "seg", n=1)
    out = tmp_path / "out"
    stale = out / "tiny-random" / "zs-seg" / "voc21@sclip" / ".pred.999999999.tmp"
    stale.mkdir(parents=True)
    args = [
        "run", "--task", "zs-seg", "--model", "tiny-random", "--dataset", "voc21", "--protocol", "sclip",
        "--data-root", str(root), "--out", str(out), "--quiet", "--workers", "0", "--device", "cpu",
        "--save-predictions",
    ]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert not stale.exists() and (stale.parent / "pred").is_dir()
    (path,) = out.rglob("*.json")
    for v in json.loads(path.read_text())["metrics"].values():
        assert round(v, 2) == v
    bar = tqdm(total=3, leave=False)
    _close_progress_bars()
    assert bar.disable or not list(getattr(tqdm, "_instances", ()))


def test_no_library_warnings_reach_the_user(tmp_path):
    """In a real process (pytest hides warnings in-process): torch's pickle-protocol warning
    and its weights_only advice never appear, only our one line."""
    import subprocess
    import sys

    weights = _weights_file(tmp_path, {"x": torch.zeros(2)}, protocol=5)
    env = {**os.environ, "SILC_BENCH_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "silc_bench", "run", "--task", "zs-cls", "--model", "open_clip:ViT-Tiny-P8"]
    args += [
        "--weights",
        weights,
        "--dataset",
        "cifar100",
        "--data-root",
        str(tmp_path),
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("silc-bench: error:"), proc.stderr
