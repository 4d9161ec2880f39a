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


def _fake_hub(tmp_path, monkeypatch, capsys) -> str:
    """A Hugging Face cache in the standard layout holding tiny-random, exported."""
    hub = tmp_path / "hub"
    snap = hub / "models--org--tiny" / "snapshots" / "abc123"
    assert main(["export", "tiny-random", "--out", str(snap)]) == 0
    (snap / "silc_bench_export.json").unlink()
    (hub / "models--org--tiny" / "refs").mkdir()
    (hub / "models--org--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capsys.readouterr()
    return str(snap)


def test_hf_hub_and_local_dir_models_run_offline(data_root, tmp_path, monkeypatch, capsys):
    from tests.fixtures import run_args

    snap = _fake_hub(tmp_path, monkeypatch, capsys)
    got = {}
    for model in ("tiny-random", "hf-hub:org/tiny", f"local-dir:{snap}"):
        out = tmp_path / model.replace(":", "_").replace("/", "_")
        assert main(run_args("zs-cls", model, "cifar100", out, data_root)) == 0, capsys.readouterr().err
        (path,) = out.rglob("*.json")
        got[model] = json.loads(path.read_text())
    assert (
        got["hf-hub:org/tiny"]["metrics"]
        == got["tiny-random"]["metrics"]
        == got[f"local-dir:{snap}"]["metrics"]
    )
    source = got["hf-hub:org/tiny"]["env"]["model"]["source"]
    assert source == {"form": "hf-hub", "repo": "org/tiny", "revision": "abc123"}
    assert got["hf-hub:org/tiny"]["env"]["model"]["weights"]["files"][0].endswith(
        "open_clip_model.safetensors"
    )


def test_hub_names_fail_clearly_offline(data_root, tmp_path, monkeypatch, capsys):
    from tests.fixtures import run_args

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for model, needles in (
        ("hf-hub:org/absent", ("org/absent", "open_clip_config.json", "nothing is downloaded")),
        (
            "open_clip:ViT-B-32/laion2b_s34b_b79k",
            ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model"),
        ),
        ("open_clip:ViT-B-32/laion2b_nope", ("did you mean",)),
        (f"local-dir:{tmp_path}", ("open_clip_config.json",)),
    ):
        assert main(run_args("zs-cls", model, "cifar100", tmp_path / "o", data_root)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and all(n.lower() in err.lower() for n in needles), err
