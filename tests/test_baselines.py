"""TCL and PACL through the CLI, and the protocol audit (`check --zero-shot-only`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from silc_bench.cli import main
from silc_bench.core.errors import UserError
from tests import seg_fixtures
from tests.test_tcl import authors_checkpoint


@pytest.fixture(scope="module")
def seg_root(tmp_path_factory) -> Path:
    return seg_fixtures.make_all(tmp_path_factory.mktemp("seg"), n=2)


@pytest.fixture
def registry(trained_weights, tmp_path, monkeypatch) -> Path:
    """tcl-tiny (trained tiny CLIP + a random masker in the authors' layout) and pacl-test
    (its own name: redefining the shipped pacl-tiny needs `override`)."""
    masker = tmp_path / "tcl.pth"
    torch.save({"model": authors_checkpoint()}, str(masker))
    sd = load_file(str(trained_weights))
    g = torch.Generator().manual_seed(0)
    emb = {
        "pacl.proj.weight": torch.randn(32, 64, generator=g) / 8,
        "pacl.proj.bias": torch.zeros(32),
        "pacl.mlp.0.weight": torch.randn(32, 32, generator=g) / 6,
        "pacl.mlp.0.bias": torch.zeros(32),
        "pacl.mlp.2.weight": torch.randn(32, 32, generator=g) / 6,
        "pacl.mlp.2.bias": torch.zeros(32),
    }
    pacl = tmp_path / "pacl.safetensors"
    save_file({**sd, **emb}, str(pacl))
    reg = tmp_path / "extra.yaml"
    reg.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "tcl-tiny": {
                        "arch": {"open_clip": "ViT-Tiny-P8"},
                        "backend": "tcl",
                        "weights": {"path": str(trained_weights), "masker": str(masker)},
                    },
                    "pacl-test": {
                        "arch": {"open_clip": "ViT-Tiny-P8"},
                        "backend": "pacl",
                        "weights": {"path": str(pacl)},
                    },
                }
            }
        )
    )
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    return reg


def _run(root, out, *extra):
    return main(
        [
            "run",
            "--task",
            "zs-seg",
            "--data-root",
            str(root),
            "--out",
            str(out),
            "--quiet",
            "--workers",
            "0",
            "--protocol",
            "sclip",
            *extra,
        ]
    )


def test_tcl_raw_refined_and_ensemble(registry, seg_root, tmp_path, capsys):
    out = tmp_path / "r"
    assert _run(seg_root, out, "--model", "tcl-tiny", "--dataset", "voc21") == 0, capsys.readouterr().err
    assert _run(seg_root, out, "--model", "tcl-tiny", "--dataset", "voc21", "--pamr", "--tcl-ensemble") == 0
    table = capsys.readouterr().out
    assert "†" in table and "label_access=tuned" in table  # tables mark non-raw results
    folder = out / "tcl-tiny" / "zs-seg"
    raw = json.loads((folder / "voc21@sclip.json").read_text())
    tuned = json.loads((folder / "voc21@sclip+pamr+tcl-ensemble.json").read_text())
    assert (
        raw["protocol"]["score"] == "sigmoid" and raw["protocol"]["background_rule"] == "constant bg_thresh"
    )
    assert raw["protocol"]["num_queries"] == 56 - 26  # SCLIP voc21 queries minus the 26 background words
    assert (raw["protocol"]["refinement"], raw["protocol"]["label_access"]) == ("none", "none")
    assert (tuned["protocol"]["refinement"], tuned["protocol"]["label_access"]) == ("pamr", "tuned")
    assert main(["check", str(folder / "voc21@sclip.json"), "--zero-shot-only"]) == 0
    assert main(["check", str(out), "--zero-shot-only"]) == 1
    err = capsys.readouterr().err
    assert "voc21@sclip+pamr+tcl-ensemble.json" in err and "refinement=pamr" in err


def test_pacl_and_flags_only_for_tcl(registry, seg_root, tmp_path, capsys):
    out = tmp_path / "r"
    assert _run(seg_root, out, "--model", "pacl-test", "--dataset", "pc59") == 0, capsys.readouterr().err
    res = json.loads((out / "pacl-test" / "zs-seg" / "pc59@sclip.json").read_text())
    assert res["protocol"]["dense_mode"] == "pacl" and res["protocol"]["backend"] == "pacl"
    assert _run(seg_root, out, "--model", "pacl-test", "--dataset", "pc59", "--pamr") == 2
    assert "TCL" in capsys.readouterr().err


def test_tcl_release_layout_key_report_and_knowing_resave(
    registry, trained_weights, tmp_path, capsys, monkeypatch
):
    """The authors' tcl.pth also carries its own CLIP copy, loss parameters and, in training
    checkpoints, non-tensor objects: the copy is reported unused, the objects are refused
    (weights_only) with the resave command to run, and the resaved file loads."""
    import argparse

    from silc_bench.models.resolve import load_model, parse_model_ref

    release = {
        "model": {
            **authors_checkpoint(),
            "clip_image_encoder.visual.proj": torch.zeros(3),
            "tcli_loss.logit_scale": torch.zeros(()),
        },
        "config": argparse.Namespace(lr=1e-4),  # an object weights_only refuses
    }
    pth = tmp_path / "tcl-release.pth"
    torch.save(release, str(pth))
    reg = tmp_path / "tcl.yaml"
    reg.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "tcl-rel": {
                        "arch": {"open_clip": "ViT-Tiny-P8"},
                        "backend": "tcl",
                        "weights": {"path": str(trained_weights), "masker": str(pth)},
                    }
                }
            }
        )
    )
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", f"{registry}{os.pathsep}{reg}")
    with pytest.raises(UserError, match=r"resave .*--trust-pickle") as e:
        load_model(parse_model_ref("tcl-rel"))
    assert "argparse.Namespace" in str(e.value)
    safe = tmp_path / "tcl-release.safetensors"
    assert main(["resave", str(pth), "--out", str(safe)]) == 2  # not without --trust-pickle
    assert not safe.exists()
    assert main(["resave", str(pth), "--out", str(safe), "--trust-pickle"]) == 0
    capsys.readouterr()
    reg.write_text(reg.read_text().replace(str(pth), str(safe)))
    model = load_model(parse_model_ref("tcl-rel"))
    keys = model.info["weights"]["keys"]
    assert keys[safe.name] == {"tcl_masker": len(authors_checkpoint()), "unused": 2}
    assert set(keys[trained_weights.name]) == {"clip"}
