"""TCL and PACL through the CLI, and the protocol audit (`check --zero-shot-only`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from silc_bench.cli import main
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
