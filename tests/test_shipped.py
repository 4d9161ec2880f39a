"""The shipped tiny models (silc_bench/weights/): sizes, the criteria on ShapesWorld for the
default model, and `make demo` on it. Every shipped model's regression numbers are checked
by `.ci/run` (`silc-bench check --regression --run`), not measured twice here.

Everything here runs the real CLI on the real generated sets, from a fresh clone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from silc_bench.cli import main
from silc_bench.config import load_models
from silc_bench.core.paths import PACKAGE_DIR
from silc_bench.segmentation.references import dataset_references

SHIPPED = ("silc-tiny", "clip-tiny", "pacl-tiny")
# The criteria need only the default model's runs; every shipped model's expected numbers
# are held by `.ci/run`: silc-bench check --regression --run --models silc-tiny clip-tiny pacl-tiny
RUNS = (("zs-cls", "shapes-cls"), ("retrieval", "shapes-retrieval"), ("zs-seg", "shapes-seg"))


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shipped")
    for task, dataset in RUNS:
        args = ["run", "--task", task, "--model", "silc-tiny", "--dataset", dataset]
        assert main([*args, "--out", str(out), "--quiet", "--workers", "0"]) == 0
    return out


def _read(out: Path, model: str, task: str, dataset: str) -> dict:
    return json.loads((out / model.replace(":", "@") / task / f"{dataset}.json").read_text())


def test_weights_ship_inside_the_package_within_the_size_budget():
    models = load_models()
    files = set()
    for name in SHIPPED:
        paths = models[name].weights["path"]
        for p in paths if isinstance(paths, list) else [paths]:
            assert p.startswith("package:"), p
            files.add(PACKAGE_DIR / p.split(":", 1)[1])
    sizes = {f.name: f.stat().st_size / 2**20 for f in files}
    assert all(mb <= 25 for mb in sizes.values()), sizes
    assert sum(sizes.values()) <= 60, sizes
    assert {f.suffix for f in files} == {".safetensors"}


def test_silc_tiny_teacher_meets_the_criteria(results):
    cls = _read(results, "silc-tiny", "zs-cls", "shapes-cls")
    assert cls["variant"] == "teacher"
    assert cls["metrics"]["top1"] >= 5 * 100 / cls["protocol"]["num_classes"]
    ret = _read(results, "silc-tiny", "retrieval", "shapes-retrieval")
    chance = 100 / ret["protocol"]["num_images"]
    assert ret["metrics"]["i2t_recall@1"] >= 10 * chance and ret["metrics"]["t2i_recall@1"] >= 10 * chance
    seg = _read(results, "silc-tiny", "zs-seg", "shapes-seg")
    assert seg["metrics"]["mIoU"] > dataset_references("shapes-seg")["uniform random"]
    assert seg["protocol"]["refinement"] == "none" and seg["protocol"]["label_access"] == "none"


@pytest.mark.xfail(
    strict=True,
    reason="the v3 silc-tiny's colour mIoU (10.0) is below the best constant prediction (13.1); "
    "the v2 model (22.8) was above it. reports/shapes.md has the trade-off. Strict: a model that "
    "clears the bar again makes this test fail until the mark is removed",
)
def test_silc_tiny_teacher_segments_better_than_a_constant(results):
    seg = _read(results, "silc-tiny", "zs-seg", "shapes-seg")
    assert seg["metrics"]["mIoU"] > dataset_references("shapes-seg")["best constant"]


def test_default_model_holds_its_regression_numbers(results, capsys):
    assert main(["check", str(results), "--regression", "--zero-shot-only"]) == 0, capsys.readouterr().err
    assert "8 metrics within ±1 of expected" in capsys.readouterr().out


def test_demo_runs_the_default_model(results, capsys):
    """The demo in a folder that already holds its results reuses them (same run key)."""
    capsys.readouterr()
    assert main(["demo", "--out", str(results), "--quiet"]) == 0
    captured = capsys.readouterr()
    table = captured.out
    assert "silc-tiny (teacher)" in table and "shapes-seg" in table and "shapes-cls" in table
    assert captured.err.count("reused") == 2, captured.err
    assert (results / "silc-tiny" / "zs-seg" / "shapes-seg.json").is_file()
