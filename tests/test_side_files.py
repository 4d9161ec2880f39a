"""What `convert` verifies and records is bound to the checkpoint: the reference follows the
target's GELU, the pad id is recorded, the tokenizer side file must be the checkpoint's
vocabulary (size, then sha256 recorded at conversion or first use), and the header record
is sealed to the tensors. Plus the output-path and resave messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from silc_bench.cli import main
from silc_bench.convert.layout import describe
from silc_bench.convert.npz_tree import NpzTree
from silc_bench.convert.reference import encode_image, encode_text
from silc_bench.core.paths import weights_dir
from silc_bench.models.converted import METADATA_KEY, read_metadata
from tests.bv_fixtures import make_sp_model, make_tree, save
from tests.test_zs_seg import _fails


@pytest.fixture(scope="module")
def sps(tmp_path_factory):
    """Sentencepiece models: the fixture vocabulary (100 pieces) in the T5 and the Gemma
    layouts, another 100-piece vocabulary, and the wrong sizes of the issue (41, 48, 47)."""
    d = tmp_path_factory.mktemp("sps")
    out = {"t5": make_sp_model(d, 100, name="t5"), "gemma": make_sp_model(d, 100, gemma=True, name="gemma")}
    for n in (41, 48, 47):
        out[n] = make_sp_model(d, n, name=f"v{n}")
    return out


def _convert(tmp_path, tree, *extra, name="m"):
    src = save(tree, tmp_path / f"{name}.npz")
    out = tmp_path / f"{name}.safetensors"
    return main(["convert", "--from", "big_vision", str(src), "--out", str(out), *extra]), src, out


def _registry(tmp_path, monkeypatch, out, name="bound"):
    reg = tmp_path / f"{name}.yaml"
    reg.write_text(f"models:\n  {name}:\n    arch: {{converted: big_vision}}\n    weights: {{path: {out}}}\n")
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    return name


def _ok(code, capsys):
    err = capsys.readouterr().err
    assert code == 0, err


def _run_args(tmp_path, model):
    out, data = str(tmp_path / "r"), str(tmp_path / "data")
    return ["run", "--task", "zs-cls", "--model", model, "--dataset", "shapes-cls", "--out", out,
            "--data-root", data, "--quiet", "--limit", "6"]  # fmt: skip


# ----------------------------------------------------------------- 1. the target's GELU


def _tanh_config(text: bool, image: bool):
    from silc_bench.convert import command

    plain = command.custom_config

    def cfg(spec):
        c = plain(spec)
        if text:
            c["text_cfg"]["act_kwargs"] = {"approximate": "tanh"}  # open_clip's *-SigLIP2 text towers
        if image:
            c["timm_kwargs"]["act_layer"] = "gelu_tanh"  # timm's GELUTanh
        return c

    return cfg


@pytest.mark.parametrize("text,image", [(False, False), (True, False), (True, True)])
def test_the_reference_follows_the_targets_gelu(tmp_path, capsys, monkeypatch, text, image):
    """Weights large enough that tanh and exact GELU differ by > 1e-4: a tanh target checked
    against an exact reference would fail verification."""
    from silc_bench.convert import command

    monkeypatch.setattr(command, "custom_config", _tanh_config(text, image))
    code, src, out = _convert(tmp_path, make_tree(seed=1, scale=0.3))
    err = capsys.readouterr().err
    assert code == 0, err
    want = {"image": "tanh" if image else "exact", "text": "tanh" if text else "exact"}
    check = read_metadata(out)["verification"]
    assert check["activation"] == want and f"text {'tanh-approximate' if text else 'exact'} GELU" in err
    assert max(check["max_abs_diff"].values()) < 1e-5
    assert min(check["gelu_tanh_vs_exact_max_abs_diff"].values()) > 1e-4  # the choice matters here
    # the registered model (its recorded config) computes the reference of its own activation
    from silc_bench.config import ModelSpec
    from silc_bench.models.resolve import ModelRef, load_model

    meta = read_metadata(out)
    spec = ModelSpec(name="g", arch={"config": meta["config"]}, weights={"path": str(out)})
    model = load_model(ModelRef("g", spec, None))
    t = NpzTree(src)
    x = np.random.default_rng(3).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    got = model.image_features(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))["embed"].numpy()
    assert np.abs(got - encode_image(t, describe(t), x, want["image"])["embed"]).max() < 1e-5
    tokens = np.random.default_rng(4).integers(0, 100, (2, 16))
    txt = model.encode_text(torch.from_numpy(tokens)).numpy()
    assert np.abs(txt - encode_text(t, tokens, want["text"])).max() < 1e-5


# ----------------------------------------------------------------- 2. the pad id


def test_pad_id_is_recorded_and_used(tmp_path, capsys, monkeypatch, sps):
    from silc_bench.models.sp_tokenizer import SentencePieceTokenizer, load_tokenizer

    tree = make_tree(seed=5)
    cases = {("gemma", None): 0, ("t5", None): 1, ("gemma", "eos"): 1, ("t5", "pad"): 0, ("gemma", "7"): 7}
    for (kind, rule), want in cases.items():
        extra = ["--pad-id", rule] if rule else []
        code, _, out = _convert(tmp_path, tree, "--tokenizer", str(sps[kind]), *extra, name=f"{kind}{rule}")
        _ok(code, capsys)
        meta = read_metadata(out)["tokenizer"]
        assert meta["pad_id"] == want, (kind, rule)
        tok, info = load_tokenizer(meta, "m", tmp_path)
        ids = tok(["a red circle"])[0]
        n = len(tok.sp.encode("a red circle"))
        assert info["pad_id"] == want and ids[n] == 1 and (ids[n + 1 :] == want).all()  # EOS, then pads
    # a record from before pad_id pads with EOS, whatever the vocabulary's layout
    old = {"type": "sentencepiece", "context_length": 16, "path": str(sps["gemma"])}
    tok, info = load_tokenizer(old, "m", tmp_path)
    assert info["pad_id"] == 1 and (tok(["a"])[0][-4:] == 1).all()
    assert SentencePieceTokenizer(sps["gemma"], 16, pad_id=0)(["a"])[0][-1] == 0
    capsys.readouterr()
    _fails(["convert", str(tmp_path / "gemmaNone.npz"), "--out", str(tmp_path / "p.safetensors"),
            "--tokenizer", str(sps["gemma"]), "--pad-id", "100"], capsys, "--pad-id 100")  # fmt: skip
    _fails(["convert", str(tmp_path / "gemmaNone.npz"), "--out", str(tmp_path / "p.safetensors"),
            "--pad-id", "x"], capsys, "--pad-id 'x'")  # fmt: skip
    code, _, out = _convert(tmp_path, tree, "--pad-id", "0", name="nofile")
    assert code == 0 and read_metadata(out)["tokenizer"]["pad_id"] == 0
    capsys.readouterr()


# ----------------------------------------------------------------- 3. the tokenizer side file


def test_tokenizer_must_have_the_embeddings_size(tmp_path, capsys, monkeypatch, sps):
    tree = make_tree(seed=6)
    src = save(tree, tmp_path / "v.npz")
    for n in (41, 48, 47):
        _fails(["convert", str(src), "--out", str(tmp_path / "v.safetensors"), "--tokenizer", str(sps[n])],
               capsys, f"{n} pieces", "exactly 100")  # fmt: skip
    assert not (tmp_path / "v.safetensors").exists()
    # converted without --tokenizer: a run with a wrong-size tokenizer.model is refused
    code, _, out = _convert(tmp_path, tree, name="notok")
    _ok(code, capsys)
    assert read_metadata(out)["tokenizer"]["vocab_size"] == 100
    model = _registry(tmp_path, monkeypatch, out)
    folder = weights_dir() / "tokenizers"
    folder.mkdir(parents=True, exist_ok=True)
    for n in (41, 48, 47):
        (folder / "tokenizer.model").write_bytes(sps[n].read_bytes())
        _fails(_run_args(tmp_path, model), capsys, f"{n} pieces", "100")
    assert not list((tmp_path / "r").rglob("*.json"))


def test_a_tokenizer_is_bound_to_the_checkpoint_on_first_use(tmp_path, capsys, monkeypatch, sps):
    code, _, out = _convert(tmp_path, make_tree(seed=8), name="first")
    _ok(code, capsys)
    model = _registry(tmp_path, monkeypatch, out)
    folder = weights_dir() / "tokenizers"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(sps["t5"].read_bytes())
    assert main(_run_args(tmp_path, model)) == 0
    err = capsys.readouterr().err
    assert "bound to this checkpoint on first use" in err
    assert main(_run_args(tmp_path, model)) == 0  # the same file again: fine, nothing said
    assert "first use" not in capsys.readouterr().err
    (folder / "tokenizer.model").write_bytes(sps["gemma"].read_bytes())  # 100 pieces, another vocabulary
    _fails(_run_args(tmp_path, model), capsys, "not the tokenizer first used", "bindings")
    # another checkpoint binds its own file: the shared name does not tie them together
    code, _, out2 = _convert(tmp_path, make_tree(seed=9), name="second")
    _ok(code, capsys)
    model2 = _registry(tmp_path, monkeypatch, out2, name="other")
    _ok(main(_run_args(tmp_path, model2)), capsys)
    (folder / "tokenizer.model").unlink()


def test_a_tokenizer_sha_mismatch_is_one_line_and_says_nothing_about_replacing(
    tmp_path, capsys, monkeypatch, sps
):
    tok = tmp_path / "c4.model"
    tok.write_bytes(sps["t5"].read_bytes())
    code, _, out = _convert(tmp_path, make_tree(seed=10), "--tokenizer", str(tok), name="sha")
    _ok(code, capsys)
    model = _registry(tmp_path, monkeypatch, out)
    _ok(main(_run_args(tmp_path, model)), capsys)
    tok.write_bytes(sps["gemma"].read_bytes())  # a stored result exists; the file changed under it
    _fails(_run_args(tmp_path, model), capsys, "sha256 mismatch", "nothing was run")
    code = main(_run_args(tmp_path, model))
    assert "replacing" not in capsys.readouterr().err


# ----------------------------------------------------------------- 3b. the sealed header


def _rewrite(path, record=None, tensors=None):
    from safetensors.torch import load_file, save_file

    from silc_bench.models.header_digest import read_header

    header, _ = read_header(path)
    rec = json.loads(header["__metadata__"][METADATA_KEY]) if record is None else record
    save_file(tensors or load_file(str(path)), str(path), metadata={METADATA_KEY: json.dumps(rec)})


def test_an_edited_header_or_tensor_is_refused(tmp_path, capsys, monkeypatch, sps):
    tree = make_tree(seed=12)
    code, _, out = _convert(tmp_path, tree, "--tokenizer", str(sps["t5"]), name="sealed")
    _ok(code, capsys)
    record = read_metadata(out)
    assert len(record["digest"]["sha256"]) == 64 and len(record["digest"]["data_sha256"]) == 64
    model = _registry(tmp_path, monkeypatch, out)
    pristine = out.read_bytes()
    _ok(main(_run_args(tmp_path, model)), capsys)
    for field, value in [("mean", [0.4] * 3), ("std", [0.2] * 3), ("interpolation", "bicubic")]:
        edited = json.loads(json.dumps(record))
        edited["preprocess"][field] = value
        _rewrite(out, edited)
        _fails(_run_args(tmp_path, model), capsys, str(out), "edited after conversion")
        out.write_bytes(pristine)
    edited = json.loads(json.dumps(record))
    edited["tokenizer"]["pad_id"] = 0
    _rewrite(out, edited)
    _fails(_run_args(tmp_path, model), capsys, "edited after conversion")
    out.write_bytes(pristine)
    from safetensors.torch import load_file

    tensors = load_file(str(out))
    tensors["logit_bias"] = tensors["logit_bias"] + 1
    _rewrite(out, None, tensors)
    _fails(_run_args(tmp_path, model), capsys, "tensors are not the ones")
    # a file converted before digests: accepted, with a warning naming it
    old = json.loads(json.dumps(record))
    del old["digest"]
    out.write_bytes(pristine)
    _rewrite(out, old)
    assert main(_run_args(tmp_path, model)) == 0
    err = capsys.readouterr().err
    assert f"{out}: converted before header digests" in err


def test_a_verified_file_is_not_rehashed(tmp_path, capsys, monkeypatch):
    from silc_bench.models import header_digest
    from silc_bench.models.converted import spec_from_converted

    code, _, out = _convert(tmp_path, make_tree(seed=13), name="memo")
    _ok(code, capsys)
    from silc_bench.config import ModelSpec

    spec = ModelSpec(name="x", arch={"converted": "big_vision"}, weights={"path": str(out)})
    spec_from_converted(spec, out)
    calls = []
    real = header_digest._data_sha256
    monkeypatch.setattr(header_digest, "_data_sha256", lambda p, s: calls.append(p) or real(p, s))
    spec_from_converted(spec, out)
    assert calls == []


# ----------------------------------------------------------------- 4. where convert writes


def test_register_writes_into_the_weights_folder_and_root_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("SILC_BENCH_WEIGHTS", str(tmp_path / "fresh-weights"))
    src = save(make_tree(seed=14), tmp_path / "rel.npz")
    assert main(["convert", str(src), "--register", "--name", "in-weights"]) == 0
    assert "registered 'in-weights'" in capsys.readouterr().out
    written = tmp_path / "fresh-weights" / "in-weights.safetensors"
    assert read_metadata(written) is not None
    assert str(written) in (tmp_path / "cfg" / "silc-bench" / "models.yaml").read_text()
    _fails(["convert", str(src), "--out", "/x.safetensors"], capsys, "root folder")
    _fails(["convert", str(src)], capsys, "--out", "--register")


def test_the_missing_weights_hint_names_the_real_folder(tmp_path, capsys):
    _fails(_run_args(tmp_path, "silc-b16-datacomp"), capsys, f"--out {weights_dir()}/silc-b16-datacomp")
    capsys.readouterr()
    main(_run_args(tmp_path, "silc-b16-datacomp"))
    assert "--out $SILC_BENCH_WEIGHTS" not in capsys.readouterr().err


# ----------------------------------------------------------------- 5. resave


def test_resave_of_a_flat_state_dict_leaves_nothing_out(tmp_path, capsys):
    from safetensors.torch import load_file

    flat = tmp_path / "flat.pth"
    torch.save({"a.weight": torch.ones(2), "b.bias": torch.zeros(3)}, flat)
    assert main(["resave", str(flat), "--out", str(tmp_path / "f.safetensors"), "--trust-pickle"]) == 0
    assert "left out" not in capsys.readouterr().err
    assert set(load_file(str(tmp_path / "f.safetensors"))) == {"a.weight", "b.bias"}
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {"a": torch.ones(1)}, "epoch": 3, "optimizer": {"m": torch.ones(1)}}, wrapped)
    assert main(["resave", str(wrapped), "--out", str(tmp_path / "w.safetensors"), "--trust-pickle"]) == 0
    assert "left out the non-state-dict entries ['epoch', 'optimizer']" in capsys.readouterr().err
    mixed = tmp_path / "mixed.pth"
    torch.save({"a": torch.ones(1), "step": 7}, mixed)
    assert main(["resave", str(mixed), "--out", str(tmp_path / "m.safetensors"), "--trust-pickle"]) == 0
    assert "entries ['step']" in capsys.readouterr().err
