"""Training end to end on generated pairs: loss goes down, export → load → evaluate, resume, DDP, PACL."""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from silc_bench.api import EvalOptions, evaluate
from silc_bench.cli import main
from silc_bench.core.errors import UserError
from silc_bench.data.synthetic import CLASSES, draw, make_imagefolder
from silc_bench.models import load_model, parse_model_ref
from silc_bench.train import train, train_from_config
from silc_bench.train.config import config_from_dict, load_config
from silc_bench.train.model import build_clip

REPO = Path(__file__).resolve().parent.parent

# A smaller text context than ViT-Tiny-P8 keeps these runs fast; also covers `model.config`.
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 coloured shapes with captions naming them, as image,caption CSV."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        name, (color, shape) = sorted(CLASSES.items())[i % len(CLASSES)]
        (root / "img").mkdir(exist_ok=True)
        draw(color, shape, 40, rng).save(root / "img" / f"{i}.png")
        rows.append({"image": f"img/{i}.png", "caption": f"a photo of a {name.replace('_', ' ')}"})
    with (root / "pairs.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["image", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "pairs.csv"


def _raw(manifest: Path, out_dir: Path, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "model": {"config": copy.deepcopy(TINY_CONFIG)},
        "data": {"manifest": str(manifest)},
        "objective": {"head": {"hidden": 32, "bottleneck": 16, "out_dim": 64}, "n_local": 2},
        "optim": {"lr": 2e-3, "steps": 8, "weight_decay": 0.0, "schedule": "rsqrt"},
        "batch_size": 8,
        "workers": 0,
        "checkpoint_every": 0,
        "out_dir": str(out_dir),
        "export": {"name": "tiny"},
    }
    for section, value in over.items():
        if isinstance(value, dict) and isinstance(raw.get(section), dict) and section != "model":
            raw[section] = {**raw[section], **value}
        else:
            raw[section] = value
    return raw


def _write_cfg(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# ---------------------------------------------------------------- the loss goes down


def test_plain_clip_when_distill_is_off(manifest, tmp_path):
    raw = _raw(manifest, tmp_path / "run", objective={"distill": False})
    result = train(config_from_dict(raw))
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 8 and "distill" not in result.history[0]
    assert _mean(losses[-3:]) < _mean(losses[:3])
    keys = set().union(*(load_file(str(f)).keys() for f in result.files))
    assert "visual.conv1.weight" in keys and not any(k.startswith(("teacher.", "student.")) for k in keys)
    entry = yaml.safe_load(result.entry.read_text())["models"]["tiny"]
    assert "variants" not in entry and entry["arch"] == {"config": TINY_CONFIG}


def test_silc_distillation_lowers_the_loss(manifest, tmp_path):
    # centre momentum 0: the centre is the last batch's mean, so after step 1 (zero centre,
    # DINO's artificially low collapsed start) the target is stationary on this tiny set
    raw = _raw(manifest, tmp_path / "run", objective={"center_momentum": 0.0})
    result = train(config_from_dict(raw))
    hist = result.history
    assert all(h["teacher_temp"] == pytest.approx(0.07) for h in hist)
    total = [h["loss"] for h in hist]
    assert _mean(total[-3:]) < _mean(total[1:4])
    assert _mean([h["distill"] for h in hist[-3:]]) < _mean([h["distill"] for h in hist[1:4]])
    assert all(h["loss"] == pytest.approx(h["contrastive"] + h["distill"], rel=1e-5) for h in hist)


# ---------------------------------------------------------------- export → load → evaluate


def test_export_loads_and_evaluates_teacher_and_student(manifest, tmp_path, monkeypatch):
    raw = _raw(
        manifest,
        tmp_path / "run",
        model={"open_clip": "ViT-Tiny-P8"},
        optim={"steps": 2},
        export={"name": "silc-mini", "fp16": True, "max_file_mb": 2},
    )
    result = train_from_config(_write_cfg(tmp_path / "silc-mini.yaml", raw))
    assert (
        len(result.files) > 1
        and result.files[0].name == f"silc-mini-00001-of-{len(result.files):05d}.safetensors"
    )
    sd = {k: v for f in result.files for k, v in load_file(str(f)).items()}
    assert not any(k.startswith(("head", "teacher.head", "dino")) for k in sd)  # the head is training-only
    assert {"teacher.visual.proj", "student.visual.proj", "text_projection", "logit_scale"} <= set(sd)
    record = json.loads(open_clip_metadata(result.files[0]))
    assert record["step"] == 2 and record["arch"] == {"open_clip": "ViT-Tiny-P8"}
    assert record["preprocess"]["size"] == 32 and record["tokenizer"]["context_length"] == 77
    entry = yaml.safe_load(result.entry.read_text())["models"]["silc-mini"]
    assert entry["default_variant"] == "teacher" and len(entry["weights"]["sha256"]) == len(result.files)
    assert str(tmp_path / "silc-mini.yaml") in entry["reproduce"]

    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(result.entry))
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    teacher = load_model(parse_model_ref("silc-mini:teacher"))
    student = load_model(parse_model_ref("silc-mini:student"))
    assert torch.equal(teacher.module.visual.proj, sd["teacher.visual.proj"].float())
    assert torch.equal(student.module.visual.proj, sd["student.visual.proj"].float())
    assert not torch.equal(teacher.module.visual.proj, student.module.visual.proj)  # EMA lags the student

    shapes = make_imagefolder(tmp_path / "shapes", n_train=1, n_test=2, size=32)
    opts = EvalOptions(data_root=tmp_path, out=tmp_path / "results", device="cpu", workers=0, progress=False)
    for ref in ("silc-mini:teacher", "silc-mini:student"):
        out = evaluate(ref, "zs-cls", f"imagefolder:{shapes}", opts)
        assert out.result.variant == ref.split(":")[1] and 0 <= out.result.metrics["top1"] <= 100


def open_clip_metadata(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()["silc_bench"]


# ---------------------------------------------------------------- resume


def test_resume_is_bit_identical_and_refuses_a_changed_config(manifest, tmp_path):
    raw = _raw(
        manifest,
        tmp_path / "run",
        optim={"steps": 4},
        grad_accum=2,
        batch_size=4,
        checkpoint_every=2,
        workers=1,
    )
    cfg_path = _write_cfg(tmp_path / "c.yaml", raw)
    straight = train_from_config(cfg_path)
    half = tmp_path / "half.pt"
    shutil.copy(straight.checkpoints[0], half)
    full = {k: v for k, v in torch.load(straight.checkpoints[-1], weights_only=True)["model"].items()}
    teacher = torch.load(straight.checkpoints[-1], weights_only=True)["objective"]

    resumed = train_from_config(cfg_path, resume=half)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history[2:]]
    again = torch.load(resumed.checkpoints[-1], weights_only=True)
    assert all(torch.equal(full[k], again["model"][k]) for k in full)
    assert all(torch.equal(teacher[k], again["objective"][k]) for k in teacher)
    log = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2, 3, 4]  # the resumed steps replace theirs

    log_lines = (tmp_path / "run" / "train_log.jsonl").read_text().count("\n")
    changed = _write_cfg(tmp_path / "d.yaml", {**raw, "optim": {**raw["optim"], "lr": 1e-3}, "seed": 3})
    with pytest.raises(UserError, match=r"differs from the checkpoint's in \['optim.lr', 'seed'\]"):
        train_from_config(changed, resume=half)
    assert (tmp_path / "run" / "train_log.jsonl").read_text().count("\n") == log_lines  # no step taken


# ---------------------------------------------------------------- bad input fails before any step


def test_bad_input_fails_before_any_step(manifest, tmp_path, capsys):
    root = tmp_path / "bad"
    root.mkdir()
    shutil.copytree(manifest.parent / "img", root / "img")
    cases = {
        "missing-image": (
            "image,caption\nimg/0.png,a cat\nimg/nope.png,a dog\n",
            r"line 3: image not found: .*nope\.png",
        ),
        "empty-caption": ('image,caption\nimg/0.png,a cat\nimg/1.png,""\n', r"line 3: empty caption"),
    }
    for name, (text, pattern) in cases.items():
        (root / f"{name}.csv").write_text(text)
        raw = _raw(root / f"{name}.csv", tmp_path / name)
        with pytest.raises(UserError, match=pattern):
            train_from_config(_write_cfg(tmp_path / f"{name}.yaml", raw))
        assert not (tmp_path / name).exists()
    raw = _raw(manifest, tmp_path / "typo", objective={"ema_momentun": 0.9})
    with pytest.raises(UserError, match=r"unknown key\(s\) \['objective.ema_momentun'\]"):
        train_from_config(_write_cfg(tmp_path / "typo.yaml", raw))
    raw = _raw(manifest, tmp_path / "big", batch_size=9)
    with pytest.raises(UserError, match="too few for one batch of 9"):
        train_from_config(_write_cfg(tmp_path / "big.yaml", raw))
    assert not (tmp_path / "big" / "train_log.jsonl").exists()
    # the CLI turns each into one line and exit code 2
    assert main(["train", "--config", str(tmp_path / "typo.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("silc-bench: error:") and err.count("\n") == 1


# ---------------------------------------------------------------- DDP (gloo on CPU)


def test_torchrun_two_processes(manifest, tmp_path):
    raw = _raw(manifest, tmp_path / "ddp", optim={"steps": 2}, batch_size=4)
    cfg = _write_cfg(tmp_path / "ddp.yaml", raw)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, "-m", "silc_bench", "train", "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2]  # rank 0 alone writes
    export = tmp_path / "ddp" / "export"
    assert (export / "tiny.safetensors").is_file() and (export / "tiny.yaml").is_file()
    assert "silc-bench train: 2 steps" in proc.stdout


# ---------------------------------------------------------------- PACL


def test_pacl_trains_and_exports_a_pacl_model(manifest, tmp_path, monkeypatch):
    torch.manual_seed(0)
    base = build_clip({"open_clip": "ViT-Tiny-P8"})
    save_file(base.state_dict(), str(tmp_path / "base.safetensors"))
    raw = _raw(
        manifest,
        tmp_path / "pacl",
        optim={"steps": 6, "lr": 5e-3},
        export={"name": "pacl-mini"},
        pacl={"base_arch": "ViT-Tiny-P8", "base_weights": str(tmp_path / "base.safetensors")},
    )
    del raw["model"]
    cfg_path = _write_cfg(tmp_path / "pacl.yaml", raw)
    assert load_config(cfg_path).pacl is not None
    result = train_from_config(cfg_path)
    losses = [h["loss"] for h in result.history]
    assert _mean(losses[-2:]) < _mean(losses[:2])
    sd = load_file(str(result.files[0]))
    assert torch.equal(sd["visual.proj"], base.visual.proj.detach())  # the CLIP stayed frozen
    assert {"pacl.proj.weight", "pacl.mlp.0.weight", "pacl.mlp.2.bias"} <= set(sd)

    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(result.entry))
    model = load_model(parse_model_ref("pacl-mini"))
    assert model.info["backend"] == "pacl"
    assert torch.equal(model.extras["pacl"].proj.weight, sd["pacl.proj.weight"])


def test_open_clip_name_with_sigmoid_exports_a_logit_bias(manifest, tmp_path, monkeypatch):
    raw = _raw(
        manifest,
        tmp_path / "sig",
        model={"open_clip": "ViT-Tiny-P8"},
        objective={"distill": False, "contrastive": "sigmoid"},
        optim={"steps": 1},
    )
    result = train(config_from_dict(raw))
    entry = yaml.safe_load(result.entry.read_text())["models"]["tiny"]
    assert entry["arch"]["config"]["init_logit_bias"] == -10.0
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(result.entry))
    model = load_model(parse_model_ref("tiny"))
    assert model.module.logit_bias is not None
    assert open_clip.get_model_config("ViT-Tiny-P8")["embed_dim"] == entry["arch"]["config"]["embed_dim"]


def test_fine_tuning_starts_from_a_bundle_variant(manifest, tmp_path):
    first = train(config_from_dict(_raw(manifest, tmp_path / "a", optim={"steps": 1})))
    bundle = str(first.files[0])
    raw = _raw(manifest, tmp_path / "b", optim={"steps": 1}, checkpoint_every=1)
    raw["model"]["init_weights"] = bundle
    with pytest.raises(UserError, match="is a teacher/student bundle: set model.init_variant"):
        train(config_from_dict(raw))
    raw["model"]["init_variant"] = "teacher"
    before = load_file(bundle)["teacher.visual.proj"]
    result = train(config_from_dict(raw))
    start = torch.load(result.checkpoints[0], weights_only=True)["objective"]["teacher.visual.proj"]
    # one EMA step from the same starting point: the teacher barely moved from the bundle's
    assert torch.allclose(start, before, atol=1e-3) and not torch.equal(start, before)
