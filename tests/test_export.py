"""`silc-bench export`: a plain open_clip `local-dir:` model that open_clip alone loads."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import torch
from PIL import Image

from silc_bench.cli import main
from silc_bench.models import load_model, parse_model_ref


def test_export_loads_with_open_clip_alone(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["export", "silc-tiny", "--variant", "student", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "open_clip_config.json",
        "open_clip_model.safetensors",
        "silc_bench_export.json",
    ]
    theirs, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    ours = load_model(parse_model_ref("silc-tiny:student"))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 70, 3), dtype=np.uint8))
    x = preprocess(img)[None]
    assert torch.equal(x, ours.preprocess.transform()(img)[None])  # same preprocessing
    texts = ["a red circle.", "two shapes on a striped background."]
    theirs.eval()
    with torch.no_grad():
        d_img = (theirs.encode_image(x) - ours.module.encode_image(x)).abs().max().item()
        d_txt = (
            (theirs.encode_text(tokenizer(texts)) - ours.module.encode_text(ours.tokenize(texts))).abs().max()
        )
    assert d_img <= 1e-6 and d_txt.item() <= 1e-6
    sidecar = json.loads((out / "silc_bench_export.json").read_text())
    assert sidecar["variant"] == "student" and sidecar["source_checkpoint_sha256"] == ours.checkpoint_sha256


def test_export_of_a_pacl_model_says_what_is_left_out(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["export", "pacl-tiny", "--out", str(out)]) == 0
    sidecar = json.loads((out / "silc_bench_export.json").read_text())
    assert sidecar["left_out"] == ["pacl (not an open_clip part)"]
    assert main(["export", "silc-tiny:student", "--variant", "teacher", "--out", str(out)]) == 2
