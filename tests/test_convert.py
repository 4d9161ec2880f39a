"""`silc-bench convert --from big_vision`: random big_vision trees in every documented layout,
converted and checked against the numpy reference and against open_clip's own loader."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import torch

from silc_bench.cli import main
from silc_bench.convert.layout import describe
from silc_bench.convert.npz_tree import NpzTree
from silc_bench.convert.reference import encode_image, encode_text
from silc_bench.models.converted import read_metadata
from silc_bench.models.resolve import load_model, parse_model_ref
from tests.bv_fixtures import make_sp_model, make_tree, save
from tests.test_zs_seg import _fails

CASES = [  # (pooling, scanned, params/ prefix, image head)
    ("map", False, True, False),
    ("map", True, False, False),
    ("gap", False, False, True),
    ("gap", True, True, True),
    ("tok", False, True, True),
    ("tok", True, False, False),
]


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    """A tiny sentencepiece model trained offline, with the T5/c4 special ids (pad 0, eos 1,
    unk 2) and exactly the fixture text embedding's 100 pieces."""
    return make_sp_model(tmp_path_factory.mktemp("sp"), 100)


def _convert(tmp_path, tree, *extra, name="m"):
    src = save(tree, tmp_path / f"{name}.npz")
    out = tmp_path / f"{name}.safetensors"
    code = main(["convert", "--from", "big_vision", str(src), "--out", str(out), *extra])
    return code, src, out


@pytest.mark.parametrize("pooling,scanned,prefix,head", CASES)
def test_every_layout_converts_and_matches_the_numpy_reference(
    tmp_path, capsys, pooling, scanned, prefix, head
):
    tree = make_tree(
        pooling=pooling, scanned=scanned, prefix=prefix, img_head=head, embed=24 if head else None
    )
    code, src, out = _convert(tmp_path, tree)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "verify image_embedding" in err and "tanh-approximate vs exact GELU" in err
    meta = read_metadata(out)
    assert meta["arch"] == "custom" and meta["layout"]["pooling"] == pooling
    assert max(meta["verification"]["max_abs_diff"].values()) < 1e-5
    assert meta["preprocess"] == {
        "size": 32,
        "resize": "squash",
        "interpolation": "bilinear",
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
    }
    assert (tmp_path / "m.config.json").is_file()
    # the file loads through the registry's custom-config path and gives the reference embeddings
    model = _registered(tmp_path, out, meta)
    t = NpzTree(src)
    spec = describe(t)
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    ref = encode_image(t, spec, x, "exact")
    got = model.image_features(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    assert np.abs(got["embed"].numpy() - ref["embed"]).max() < 1e-5
    assert np.abs(got["pre_logits"].numpy() - ref["pre_logits"]).max() < 1e-5
    tokens = rng.integers(0, 100, (2, 16))
    txt = model.encode_text(torch.from_numpy(tokens)).numpy()
    assert np.abs(txt - encode_text(t, tokens, "exact")).max() < 1e-5


def _registered(tmp_path, out, meta):
    from silc_bench.config import ModelSpec
    from silc_bench.models.resolve import ModelRef

    spec = ModelSpec(
        name="conv",
        arch={"config": meta["config"]},
        weights={"path": str(out)},
        preprocess=meta["preprocess"],
    )
    return load_model(ModelRef("conv", spec, None))


def test_map_tower_equals_open_clips_own_big_vision_loader(tmp_path, capsys):
    from open_clip.convert import load_big_vision_weights

    from silc_bench.models.arch import build_from_config

    for scanned in (False, True):
        tree = make_tree(seed=3, scanned=scanned, prefix=scanned)
        code, src, out = _convert(tmp_path, tree, name=f"s{scanned}")
        assert code == 0, capsys.readouterr().err
        meta = read_metadata(out)
        theirs = build_from_config(meta["config"])
        load_big_vision_weights(theirs, str(src))
        ours = _registered(tmp_path, out, meta).module
        sd_theirs = theirs.state_dict()
        for k, v in ours.state_dict().items():
            assert torch.equal(v, sd_theirs[k]), k


def test_tokenizer_recorded_and_used(tmp_path, capsys, sp_model, monkeypatch):
    from silc_bench.models.sp_tokenizer import SentencePieceTokenizer

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    code, _, out = _convert(
        tmp_path, make_tree(), "--tokenizer", str(sp_model), "--register", "--name", "tiny-bv"
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "registered 'tiny-bv'" in captured.out
    meta = read_metadata(out)
    tok = meta["tokenizer"]
    assert tok["type"] == "sentencepiece" and tok["path"] == str(sp_model) and len(tok["sha256"]) == 64
    model = load_model(parse_model_ref("tiny-bv"))
    assert model.info["tokenizer"]["pad_id"] == 1 and model.info["tokenizer"]["eos"] == "sticky"
    ids = model.tokenize(["A RED   circle"])
    sp = SentencePieceTokenizer(sp_model, 16)
    plain = sp.sp.encode("a red circle")
    assert len(plain) < 15
    assert (
        ids[0, : len(plain)].tolist() == plain
        and ids[0, len(plain)] == 1
        and (ids[0, len(plain) :] == 1).all()
    )
    long = model.tokenize([" ".join(["red circle"] * 40)])[0]
    assert long.shape == (16,) and long[-1] == 1  # sticky EOS survives truncation
    # the file moved away: one clear line naming the file and where it goes
    moved = tmp_path / "elsewhere.model"
    os.replace(sp_model, moved)
    try:
        with pytest.raises(Exception) as e:
            load_model(parse_model_ref("tiny-bv"))
        assert "tiny.model" in str(e.value) and "tokenizers" in str(e.value)
    finally:
        os.replace(moved, sp_model)


def test_no_tokenizer_file_is_written_and_a_run_says_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("SILC_BENCH_WEIGHTS", str(tmp_path / "w"))
    code, _, out = _convert(tmp_path, make_tree(), "--register", "--name", "no-tok")
    err = capsys.readouterr().err
    assert code == 0, err
    assert read_metadata(out)["tokenizer"]["file"] == "tokenizer.model"
    data = tmp_path / "data"
    code = main(
        [
            "run",
            "--task",
            "zs-cls",
            "--model",
            "no-tok",
            "--dataset",
            "shapes-cls",
            "--out",
            str(tmp_path / "r"),
            "--data-root",
            str(data),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "tokenizer.model" in err and str(tmp_path / "w" / "tokenizers") in err


def test_every_error_path_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "o.safetensors"
    good = make_tree()

    def conv(tree_or_path, *extra):
        src = (
            tree_or_path if isinstance(tree_or_path, os.PathLike) else save(tree_or_path, tmp_path / "x.npz")
        )
        return ["convert", "--from", "big_vision", str(src), "--out", str(out), *extra]

    bad = dict(good)
    del bad["params/img/Transformer/encoderblock_1/MlpBlock_0/Dense_0/bias"]
    _fails(
        conv(bad),
        capsys,
        "missing parameter params/img/Transformer/encoderblock_1/MlpBlock_0/Dense_0/bias",
        "keys under that path",
    )
    bad = dict(good)
    bad["params/txt/head/bias"] = np.zeros(7, np.float32)
    _fails(conv(bad), capsys, "params/txt/head/bias has shape (7,)")
    _fails(conv(good, "--pooling", "cls"), capsys, "unknown pooling 'cls'")
    path = save(good, tmp_path / "t.npz")
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    _fails(conv(tmp_path / "trunc.npz"), capsys, "trunc.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    _fails(conv(tmp_path / "text.npz"), capsys, "not a readable .npz")
    _fails(conv(good, "--arch", "ViT-B-16-SigLIP"), capsys, "does not fit")
    _fails(
        ["convert", str(path), "--out", str(tmp_path / "nope" / "o.safetensors")], capsys, "does not exist"
    )
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_corrupted_member_is_refused(tmp_path, capsys):
    path = save(make_tree(), tmp_path / "t.npz")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    name = "params/txt/Embed_0/embedding.npy"
    members[name] = members[name][:-64]  # the array's data is cut short
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    _fails(
        ["convert", str(tmp_path / "c.npz"), "--out", str(tmp_path / "o.safetensors")],
        capsys,
        "txt/Embed_0/embedding",
    )
    assert not (tmp_path / "o.safetensors").exists()


def test_fp16_is_an_option_and_float32_the_default(tmp_path, capsys):
    from safetensors.torch import load_file

    code, _, out = _convert(tmp_path, make_tree())
    assert code == 0 and load_file(str(out))["logit_scale"].dtype == torch.float32
    code, _, out16 = _convert(tmp_path, make_tree(), "--fp16", name="h")
    assert code == 0 and load_file(str(out16))["logit_scale"].dtype == torch.float16
    assert read_metadata(out16)["dtype"] == "float16"
    capsys.readouterr()


def test_metadata_is_json_with_the_gelu_difference(tmp_path, capsys):
    code, _, out = _convert(tmp_path, make_tree())
    assert code == 0
    meta = read_metadata(out)
    g = meta["verification"]["gelu_tanh_vs_exact_max_abs_diff"]
    assert set(g) == {"image_embedding", "text_embedding"} and all(v > 0 for v in g.values())
    assert json.loads(json.dumps(meta)) == meta
    capsys.readouterr()


def test_zs_seg_and_zs_cls_run_on_a_converted_tower_with_every_dense_mode(
    tmp_path, capsys, sp_model, monkeypatch
):
    from tests import seg_fixtures

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    code, _, _ = _convert(
        tmp_path, make_tree(seed=2), "--tokenizer", str(sp_model), "--register", "--name", "bv"
    )
    assert code == 0, capsys.readouterr().err
    seg_root = seg_fixtures.make_all(tmp_path / "seg", n=2)
    out = tmp_path / "res"
    base = [
        "run",
        "--task",
        "zs-seg",
        "--data-root",
        str(seg_root),
        "--out",
        str(out),
        "--quiet",
        "--workers",
        "0",
        "--model",
        "bv",
        "--dataset",
        "voc21",
        "--protocol",
        "sclip",
    ]
    for mode in ("patch-proj", "maskclip", "sclip", "clearclip", "naclip"):
        assert main([*base, "--dense-mode", mode]) == 0, capsys.readouterr().err
        res = json.loads(next((out / "bv" / "zs-seg").glob(f"voc21@sclip+dense-{mode}.json")).read_text())
        assert res["protocol"]["dense_mode"] == mode and res["protocol"]["backend"] == "timm-tower"
        assert 0 <= res["metrics"]["mIoU"] <= 100
    code = main([*base, "--pamr"])
    err = capsys.readouterr().err
    assert code == 2 and "--pamr applies to TCL" in err
    code = main(
        [
            "run",
            "--task",
            "zs-cls",
            "--model",
            "bv",
            "--dataset",
            "shapes-cls",
            "--out",
            str(out),
            "--data-root",
            str(tmp_path / "data"),
            "--quiet",
            "--limit",
            "12",
        ]
    )
    assert code == 0, capsys.readouterr().err
    res = json.loads(next((out / "bv" / "zs-cls").glob("shapes-cls*.json")).read_text())
    tok = res["env"]["model"]["tokenizer"]
    assert tok["type"] == "sentencepiece" and tok["sha256"] and tok["pad_id"] == 1


def test_a_registry_entry_takes_its_architecture_from_the_converted_file(
    tmp_path, capsys, sp_model, monkeypatch
):
    code, src, out = _convert(
        tmp_path, make_tree(seed=4, pooling="gap", img_head=True), "--tokenizer", str(sp_model)
    )
    assert code == 0, capsys.readouterr().err
    reg = tmp_path / "extra.yaml"
    reg.write_text(
        "models:\n  rel:\n    arch: {converted: big_vision}\n"
        f"    weights: {{path: {out}}}\n    dense_mode: maskclip\n"
    )
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    model = load_model(parse_model_ref("rel"))
    assert model.info["backend"] == "timm-tower" and model.preprocess.resize == "squash"
    assert model.info["tokenizer"]["type"] == "sentencepiece"
    x = np.random.default_rng(1).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    t = NpzTree(src)
    ref = encode_image(t, describe(t), x, "exact")["embed"]
    got = model.image_features(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))["embed"].numpy()
    assert np.abs(got - ref).max() < 1e-5
    plain = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(plain))
    reg.write_text(f"models:\n  rel:\n    arch: {{converted: big_vision}}\n    weights: {{path: {plain}}}\n")
    with pytest.raises(Exception, match="silc-bench convert"):
        load_model(parse_model_ref("rel"))


def test_hostile_inputs_are_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "o.safetensors"
    cases = {
        "NaN in a text embedding row no random token reaches": (
            "params/txt/Embed_0/embedding",
            (99, 0),
            np.nan,
        ),
        "infinite logit bias": ("params/b", (0,), np.inf),
        "NaN temperature": ("params/t", (0,), np.nan),
    }
    for _why, (key, idx, value) in cases.items():
        tree = make_tree()
        tree[key] = tree[key].copy()
        tree[key][idx] = value
        src = save(tree, tmp_path / "bad.npz")
        _fails(["convert", str(src), "--out", str(out)], capsys, "NaN or infinite", key)
    tree = make_tree()
    tree["params/img/pre_logits/kernel"] = np.zeros((32, 32), np.float32)  # a part the conversion would drop
    _fails(
        ["convert", str(save(tree, tmp_path / "extra.npz")), "--out", str(out)],
        capsys,
        "left out of the conversion",
        "img/pre_logits/kernel",
    )
    _fails(
        ["convert", str(save(make_tree(), tmp_path / "m.npz")), "--out", str(out), "--pooling", "gap"],
        capsys,
        "MAPHead_0",
    )
    big = make_tree()
    big["params/txt/Embed_0/embedding"] = big["params/txt/Embed_0/embedding"] * 1e5
    _fails(["convert", str(save(big, tmp_path / "big.npz")), "--out", str(out), "--fp16"], capsys, "float16")
    out.mkdir()
    _fails(["convert", str(save(make_tree(), tmp_path / "d.npz")), "--out", str(out)], capsys, "is a folder")
    assert not list(tmp_path.glob("*.config.json"))
    _fails(
        [
            "convert",
            str(tmp_path / "d.npz"),
            "--out",
            str(tmp_path / "x.safetensors"),
            "--register",
            "--name",
            "..",
        ],
        capsys,
        "--name",
    )


def test_a_training_export_is_not_taken_for_a_converted_file(tmp_path, capsys):
    """train/export.py writes its record under the same safetensors header key as convert;
    evaluating one's own export as `open_clip:ARCH --weights` must not be refused as a
    conversion for another architecture."""
    from silc_bench.cli import main
    from silc_bench.core.paths import REPO_ROOT
    from silc_bench.models.converted import read_metadata

    export = REPO_ROOT / "silc_bench" / "weights" / "clip-tiny.safetensors"
    assert read_metadata(export) is None
    args = ["run", "--task", "zs-cls", "--model", "open_clip:ShapesTiny-P8", "--weights", str(export)]
    args += [
        "--dataset",
        "shapes-cls",
        "--out",
        str(tmp_path / "r"),
        "--device",
        "cpu",
        "--quiet",
        "--limit",
        "8",
    ]
    assert main(args) == 0, capsys.readouterr().err
