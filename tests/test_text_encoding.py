"""Trimmed text encoding is the full-length computation up to float rounding, on every text
tower the suite ships or builds, and is used only where that can be proven."""

from __future__ import annotations

import pytest
import torch

from silc_bench.models import load_model, parse_model_ref
from silc_bench.models.arch import build_from_config, build_named
from silc_bench.models.text_encoding import encode_by_length, normalised_gap, trimmable, used_length

PROMPTS = [
    "a photo of a {}.", "a bad photo of the {}.", "a origami {}.", "itap of my {}.",
    "a black and white photo of a {}, a type of small furry animal that lives in the garden.",
    "{}!", "a photo of a {} !!! wow", "a " + "very " * 40 + "long prompt about a {}",
]  # fmt: skip
TEXTS = [p.format(c) for p in PROMPTS for c in ("red circle", "dog", "tench", "great white shark")]


def _full(module: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.encode_text(tokens)


def _trimmed(module: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return encode_by_length(module, tokens)


@pytest.mark.parametrize("ref", ["silc-tiny:teacher", "silc-tiny:student", "clip-tiny", "pacl-tiny"])
def test_trimmed_equals_full_on_the_shipped_towers(ref):
    model = load_model(parse_model_ref(ref))
    assert trimmable(model.module)
    tokens = model.tokenize(TEXTS)
    assert used_length(tokens) < tokens.shape[1] or tokens.shape[1] <= 40
    assert normalised_gap(_trimmed(model.module, tokens), _full(model.module, tokens)) <= 1e-6


@pytest.mark.parametrize("arch", ["ViT-Tiny-P8", "ViT-B-32"])
def test_trimmed_equals_full_on_random_towers_at_clips_context_length(arch):
    import open_clip

    torch.manual_seed(0)
    module = build_named(arch).eval()
    tokens = open_clip.get_tokenizer(arch)(TEXTS)
    assert tokens.shape[1] == 77 and used_length(tokens) < 77
    assert normalised_gap(_trimmed(module, tokens), _full(module, tokens)) <= 1e-6


def test_rows_come_back_in_input_order():
    torch.manual_seed(1)
    module = build_named("ViT-Tiny-P8").eval()
    import open_clip

    tokens = open_clip.get_tokenizer("ViT-Tiny-P8")(TEXTS[::-1] + TEXTS)
    full, trimmed = _full(module, tokens), _trimmed(module, tokens)
    assert normalised_gap(trimmed, full) <= 1e-6  # row by row: every row is back in its place
    assert not torch.allclose(trimmed[: len(TEXTS)], full[len(TEXTS) :], atol=1e-3)  # and the rows differ


def test_towers_that_attend_to_padding_are_not_trimmed():
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
    }
    assert trimmable(build_from_config(cfg))
    no_mask = {**cfg, "text_cfg": {**cfg["text_cfg"], "no_causal_mask": True}}
    assert not trimmable(build_from_config(no_mask))  # padding is attended: cutting it changes the number
    last = {**cfg, "text_cfg": {**cfg["text_cfg"], "pool_type": "last"}}
    assert not trimmable(build_from_config(last))  # the pooled position is fixed


def test_used_length_keeps_a_zero_inside_a_prompt():
    tokens = torch.tensor([[5, 0, 7, 9, 0, 0], [5, 9, 0, 0, 0, 0]])
    assert used_length(tokens) == 4


def test_trimmed_is_the_default_recorded_and_full_gets_its_own_file(tmp_path):
    import json

    from silc_bench.cli import main

    out = tmp_path / "o"
    base = ["run", "--task", "zs-cls", "--model", "clip-tiny", "--dataset", "shapes-cls", "--out", str(out),
            "--device", "cpu", "--quiet", "--workers", "0"]  # fmt: skip
    assert main(base) == 0 and main([*base, "--text-encoding", "full"]) == 0
    trimmed = json.loads((out / "clip-tiny" / "zs-cls" / "shapes-cls.json").read_text())
    full = json.loads((out / "clip-tiny" / "zs-cls" / "shapes-cls+text-full.json").read_text())
    assert trimmed["protocol"]["text_encoding"] == "trimmed" and full["protocol"]["text_encoding"] == "full"
    assert trimmed["run_key"]["text_encoding"] == "trimmed" and full["run_key"]["text_encoding"] == "full"
    assert abs(trimmed["metrics"]["top1"] - full["metrics"]["top1"]) < 1e-9  # the same number here


@pytest.mark.parametrize("mode", ["trimmed", "full"])
def test_identical_texts_get_identical_embeddings_across_batches(mode):
    """Ranking breaks exact ties by index, so two copies of a caption must be bitwise equal.
    Encoded in different batches, cut to different lengths, they were not (silc-tiny's
    shapes-retrieval i2t R@1 read 13.5 trimmed against 14.0 full, exit 0); each distinct
    text is now encoded once and every copy filled from it."""
    import numpy as np

    from silc_bench.features.cache import FeatureCache
    from silc_bench.features.extract import RunOptions, text_embeddings

    model = load_model(parse_model_ref("silc-tiny"))
    model.text_encoding = mode
    short, long = "a red circle", "a " + "very " * 20 + "big red circle"
    # the short caption shares a batch with the long one, then again with short ones only
    texts = [short, long, *[f"a blue shape {i}" for i in range(300)], short, short + "."]
    opts = RunOptions(batch_size=1, progress=False)
    emb = text_embeddings(model, texts, FeatureCache(None, enabled=False), opts, "t")
    assert np.array_equal(emb[0], emb[302])
    assert not np.array_equal(emb[0], emb[303])
