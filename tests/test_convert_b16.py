"""The issue's acceptance path at real size: a random ViT-B/16 SigLIP-layout `.npz` becomes a
verified safetensors file in one command; it equals open_clip's own big_vision loader; and
`run --task zs-seg --model open_clip:ViT-B-16-SigLIP --weights OUT` runs every dense mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from silc_bench.cli import main
from silc_bench.models.converted import read_metadata
from tests.bv_fixtures import B16, make_sp_model, make_tree, save


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    """An offline sentencepiece model with exactly B/16's 32000 pieces (c4_en's size)."""
    return make_sp_model(tmp_path_factory.mktemp("sp32k"), B16["vocab"])


@pytest.fixture(scope="module")
def b16(tmp_path_factory):
    folder = tmp_path_factory.mktemp("b16")
    return save(make_tree(seed=11, scanned=True, **B16), folder / "siglip_b16.npz")


@pytest.mark.slow  # about 150 s on 2 cores: `make test-all`
def test_b16_converts_verifies_and_equals_open_clips_loader(b16, tmp_path, capsys, sp_model):
    import open_clip
    from open_clip.convert import load_big_vision_weights
    from safetensors.torch import load_file

    out = tmp_path / "b16.safetensors"
    code = main(
        ["convert", "--from", "big_vision", str(b16), "--out", str(out), "--tokenizer", str(sp_model)]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "architecture: open_clip ViT-B-16-SigLIP" in err
    meta = read_metadata(out)
    assert meta["arch"] == "ViT-B-16-SigLIP" and max(meta["verification"]["max_abs_diff"].values()) < 1e-4
    assert meta["verification"]["activation"] == {"image": "exact", "text": "exact"}  # open_clip's SigLIP
    assert meta["tokenizer"]["pad_id"] == 1 and meta["tokenizer"]["vocab_size"] == 32000  # c4: EOS
    gelu = meta["verification"]["gelu_tanh_vs_exact_max_abs_diff"]
    assert 1e-5 < gelu["image_embedding"] < 1e-2  # measured, recorded, and not zero
    theirs = open_clip.create_model("ViT-B-16-SigLIP", pretrained=None, load_weights=False)
    load_big_vision_weights(theirs, str(b16))
    ours = load_file(str(out))
    for k, v in theirs.state_dict().items():
        assert torch.equal(ours[k], v), k
    theirs.eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32))
    from silc_bench.models.resolve import load_model, parse_model_ref

    model = load_model(parse_model_ref("open_clip:ViT-B-16-SigLIP", str(out)))
    with torch.no_grad():
        assert torch.allclose(model.image_features(x)["embed"], theirs.encode_image(x), atol=1e-6)
    assert model.preprocess.resize == "squash" and tuple(model.preprocess.mean) == (0.5, 0.5, 0.5)

    # a resolution the checkpoint was not trained at: position embeddings resampled, still verified
    out256 = tmp_path / "b16-256.safetensors"
    code = main(["convert", str(b16), "--out", str(out256), "--arch", "ViT-B-16-SigLIP-256"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "resampled from 14x14 to 16x16" in err
    assert read_metadata(out256)["pos_embed_resampled"] is True

    # zs-seg on a small MMSeg-layout set, every dense mode, through open_clip:ARCH --weights
    # (the default tcl profile: 9 templates keep the B/16 text tower's CPU time small)
    from tests import seg_fixtures

    root = seg_fixtures.make_all(tmp_path / "seg", n=1)
    res = tmp_path / "res"
    for mode in ("patch-proj", "maskclip", "sclip", "clearclip", "naclip"):
        args = [
            "run",
            "--task",
            "zs-seg",
            "--model",
            "open_clip:ViT-B-16-SigLIP",
            "--weights",
            str(out),
            "--dataset",
            "voc20",
            "--dense-mode",
            mode,
            "--data-root",
            str(root),
            "--out",
            str(res),
            "--quiet",
            "--workers",
            "0",
        ]
        assert main(args) == 0, capsys.readouterr().err
    files = sorted((res / "open_clip@ViT-B-16-SigLIP" / "zs-seg").glob("voc20+dense-*.json"))
    assert len(files) == 5
    for f in files:
        r = json.loads(f.read_text())
        assert (
            r["protocol"]["backend"] == "timm-tower"
            and r["env"]["model"]["tokenizer"]["type"] == "sentencepiece"
        )
