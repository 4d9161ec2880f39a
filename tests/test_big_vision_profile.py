"""The big_vision profiles follow big_vision's own evaluators (facts from
evaluators/proj/image_text/discriminative_classifier.py, prompt_engineering*.py and
configs/common_fewshot.py), and record what still differs."""

from __future__ import annotations

import json

from silc_bench.cli import main
from silc_bench.features.prompts import canonical_prompt, read_asset
from silc_bench.models.text_rules import canonicalize, tokenizer_clean
from tests.fixtures import run_args


def test_canonicalisation_is_big_visions():
    assert canonicalize("A   Dog's  toy_box!") == "a dogs toy box"
    # the tokenizer's lowercase is tf.strings.lower's: ASCII only; the prompt rule's is Python's
    assert canonicalize("CAFÉ") == "café" and tokenizer_clean("CAFÉ", "lower") == "cafÉ"
    # the template keeps its placeholder and loses its final '.'; the class name keeps only its first alias
    prompt = canonical_prompt("a bad photo of a {c}.", "Aquarium_Fish, fish")
    assert prompt == "a bad photo of a aquarium fish"
    assert canonical_prompt("{c}", "T-shirt") == "tshirt"


def test_zero_shot_uses_80_plus_bare_templates_for_every_dataset(data_root, tmp_path, capsys):
    args = run_args("zs-cls", "tiny-random", "cifar100", tmp_path, data_root, "--protocol", "big_vision")
    assert main(args) == 0, capsys.readouterr().err
    res = json.loads(next(tmp_path.rglob("cifar100@big_vision*.json")).read_text())
    p = res["protocol"]
    assert p["num_templates"] == len(read_asset("templates", "imagenet")) + 1 == 81
    assert p["templates"] == "asset:imagenet+bare" and p["canonicalize_text"] is True
    assert any("antialias" in d for d in p["differences"])


def test_few_shot_squashes_to_256_and_crops_224(data_root, tmp_path, capsys):
    args = run_args("fs-cls", "tiny-random", "shapes-cls", tmp_path, data_root, "--protocol", "big_vision")
    assert main(args) == 0, capsys.readouterr().err
    default = run_args("fs-cls", "tiny-random", "shapes-cls", tmp_path, data_root)
    assert main(default) == 0, capsys.readouterr().err
    bv = json.loads(next(tmp_path.rglob("shapes-cls@big_vision*.json")).read_text())["protocol"]
    plain = json.loads(next(p for p in tmp_path.rglob("shapes-cls*.json") if "@" not in p.name).read_text())
    assert bv["preprocess"]["resize"] == "squash_crop" and bv["resize"] == "squash_crop"
    assert plain["protocol"]["preprocess"]["resize"] != "squash_crop"
    assert len(bv["differences"]) == 3


def test_the_crop_geometry_is_the_other_published_form_with_the_checkpoints_normalisation(tmp_path, capsys):
    """`big_vision_crop`: resize(sz/0.875)|central_crop(sz), recorded; the numbers differ
    from `big_vision` only through the images (same prompts, same normalisation)."""
    out = tmp_path / "o"
    for profile in ("big_vision", "big_vision_crop"):
        argv = [
            "run",
            "--task",
            "zs-cls",
            "--model",
            "clip-tiny",
            "--dataset",
            "shapes-cls",
            "--protocol",
            profile,
        ]
        assert main([*argv, "--results", str(out), "--quiet", "--device", "cpu"]) == 0
    plain = json.loads((out / "clip-tiny" / "zs-cls" / "shapes-cls@big_vision.json").read_text())
    crop = json.loads((out / "clip-tiny" / "zs-cls" / "shapes-cls@big_vision_crop.json").read_text())
    assert plain["protocol"]["preprocess_applied"]["resize"] == "shortest"  # clip-tiny's own
    assert crop["protocol"]["preprocess_applied"]["resize"] == "squash_crop"
    assert crop["protocol"]["preprocess_applied"]["mean"] == plain["protocol"]["preprocess_applied"]["mean"]
    assert crop["metrics"] != plain["metrics"]  # measured above: top-1 18.61 vs 18.89
