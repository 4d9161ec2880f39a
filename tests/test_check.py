"""`silc-bench check --regression`: result files against checkpoints.yaml's `expected`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from silc_bench.cli import main
from silc_bench.results.schema import Result, write_result
from tests import fixtures


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    reg = tmp_path / "extra.yaml"
    entry = {
        "arch": {"open_clip": "ViT-Tiny-P8"},
        "weights": {"random_init_seed": 0},
        "variants": {
            "teacher": {"expected": {"retrieval/shapes-retrieval": {"i2t_recall@1": 30.0}}},
            "student": {},
        },
        "default_variant": "teacher",
        "expected": {
            "zs-cls/shapes-cls": {"top1": 50.0},
            "zs-seg/shapes-seg@sclip": {"mIoU": 20.0},
        },
    }
    reg.write_text(yaml.safe_dump({"models": {"reg-tiny": entry}}))
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    return reg


def _result(
    out: Path, variant: str, task: str, dataset: str, metrics: dict, profile: str, stem: str, **options
):
    r = Result(
        model="reg-tiny",
        variant=variant,
        checkpoint_sha256="0" * 64,
        run_key=fixtures.MINIMAL_RUN_KEY,
        task=task,
        task_version=1,
        dataset=dataset,
        dataset_fingerprint="f",
        protocol={},
        metrics=metrics,
        precision="fp32",
        profile=profile,
        options=options,
    )
    folder = "reg-tiny" if variant == "teacher" else f"reg-tiny@{variant}"
    write_result(out / folder / task / f"{stem}.json", r)


def test_regression_within_and_beyond_tolerance(registry, tmp_path, capsys):
    out = tmp_path / "r"
    _result(out, "teacher", "zs-cls", "shapes-cls", {"top1": 50.4}, "default", "shapes-cls")
    _result(out, "teacher", "retrieval", "shapes-retrieval", {"i2t_recall@1": 29.5}, "default", "x")
    _result(out, "teacher", "zs-seg", "shapes-seg", {"mIoU": 20.2}, "sclip", "shapes-seg@sclip")
    # a non-default task option (`+tag` file) and the default profile have no expected numbers
    _result(
        out,
        "teacher",
        "zs-seg",
        "shapes-seg",
        {"mIoU": 1.0},
        "sclip",
        "shapes-seg@sclip+dense-x",
        dense_mode="x",
    )
    _result(out, "teacher", "zs-seg", "shapes-seg", {"mIoU": 1.0}, "tcl", "shapes-seg")
    assert main(["check", str(out), "--regression"]) == 0, capsys.readouterr().err
    assert "3 metrics within ±1 of expected" in capsys.readouterr().out

    # the student variant does not inherit the teacher's own expected numbers
    _result(out, "student", "retrieval", "shapes-retrieval", {"i2t_recall@1": 5.0}, "default", "x")
    assert main(["check", str(out), "--regression"]) == 0

    _result(out, "teacher", "zs-cls", "shapes-cls", {"top1": 48.0}, "default", "shapes-cls")
    assert main(["check", str(out), "--regression"]) == 1
    err = capsys.readouterr().err
    assert "top1 = 48.00, expected 50.00 ± 1" in err and "1 problems" in err
    assert main(["check", str(out), "--regression", "--tolerance", "2.5"]) == 0


def test_regression_refuses_to_pass_vacuously(registry, tmp_path, capsys):
    out = tmp_path / "r"
    _result(out, "teacher", "zs-cls", "imagenet", {"top1": 1.0}, "default", "imagenet")
    assert main(["check", str(out), "--regression"]) == 1
    assert "no result" in capsys.readouterr().err
    assert main(["check", str(out)]) == 0


def test_run_measures_missing_keys_and_a_tampered_value_fails(data_root, tmp_path, monkeypatch, capsys):
    """`check --regression --run --models M`: evaluate what is missing, compare, and fail
    (naming the model and metric) once an expected value is tampered with."""
    reg = tmp_path / "extra.yaml"

    def registry(expected: float, tolerance: float | None = None) -> None:
        entry = {
            "arch": {"open_clip": "ViT-Tiny-P8"},
            "weights": {"random_init_seed": 0},
            "expected": {"zs-cls/shapes-cls": {"top1": expected}},
        }
        if tolerance is not None:
            entry["tolerance"] = {"zs-cls/shapes-cls": {"top1": tolerance}}
        reg.write_text(yaml.safe_dump({"models": {"reg-run": entry}}))

    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    out = tmp_path / "r"
    args = ["check", "--regression", "--models", "reg-run", "--results", str(out)]
    registry(0.0)
    assert main(args) == 1  # nothing measured yet: a missing result fails
    assert "reg-run top1: no result" in capsys.readouterr().err
    registry(0.0, tolerance=100.0)
    run = [*args, "--run", "--data-root", str(data_root), "--quiet"]
    assert main(run) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "running reg-run zs-cls/shapes-cls" in captured.err and "| ok " in captured.out
    (path,) = out.rglob("*.json")
    measured = yaml.safe_load(path.read_text())["metrics"]["top1"]
    registry(measured)
    assert main(run) == 0  # nothing to run again: the result is reused
    assert "running" not in capsys.readouterr().err
    registry(measured + 5)
    assert main(run) == 1
    captured = capsys.readouterr()
    assert "reg-run top1" in captured.err and f"expected {measured + 5:.2f}" in captured.err
    assert "FAIL" in captured.out


@pytest.mark.parametrize(
    "change, why",
    [
        ({"checkpoint_sha256": "1" * 64}, "is not the registry entry's"),
        ({"run_key": {}}, "records no run key"),
        ({"task_version": 0}, "task version 0"),
        ({"variant": "student"}, "does not have"),
        ({"dataset": "cifar100", "protocol": {"num_images": 10}}, "fewer images than the published split"),
        ({"run_key": {"model": {}, "limit": 5}}, "--limit 5"),
    ],
)
def test_a_result_stands_for_its_entry_only_by_its_own_fields(change, why):
    """One rule, from the result's own fields: each of these once stood in for clip-tiny's
    expected numbers (its checkpoint sha256 is pinned; it has no variants)."""
    from silc_bench.config import load_models
    from silc_bench.results.audit import not_the_registry_run

    fields = _clip_tiny_fields()
    spec = load_models()["clip-tiny"]
    assert not_the_registry_run(Result(**fields), spec) is None
    assert why in (not_the_registry_run(Result(**{**fields, **change}), spec) or "")


SHAPES_CLS_DATA = {
    "format": "imagefolder", "generated": "shapesworld", "path": "cls", "splits": {"eval": ["test"]}
}  # fmt: skip
CLIP_TINY = fixtures.registry_sha("clip-tiny")


@pytest.mark.parametrize(
    "change, why",
    [
        ({"protocol": {"num_images": 6}}, "fewer images than the published split"),  # limit erased
        ({"run_key": {"model": {}, "precision": "bf16"}}, "run key says 'bf16'"),
        ({"run_key": {"model": {}, "task_version": 0}}, "run key says 0"),
        ({"run_key": {"model": {"variant": "student"}}}, "run key says 'student'"),
        ({"run_key": {"model": {}, "data": {**SHAPES_CLS_DATA, "generated_seed": 1}}}, "not the dataset"),
        ({"run_key": {"model": {"weights_sha256": [CLIP_TINY, "2" * 64]}}}, "--weights"),
        ({"run_key": {"model": {}, "dataset_fingerprint": "g"}}, "dataset_fingerprint"),
        ({"run_key": {"model": {"spec": {"preprocess": {"size": 96}}}}}, "changed since this run (preproc"),
        ({"run_key": {"model": {"spec": {"dense_mode": "naclip"}}}}, "changed since this run (dense_mode)"),
        ({"run_key": {"model": {"random_init_seed": 3}}}, "random_init_seed 3"),
        ({"env": {"source": "imported"}, "checkpoint_sha256": "3" * 64}, "is not the registry entry's"),
    ],
)  # fmt: skip
def test_a_result_whose_fields_contradict_its_run_key_stands_for_nothing(change, why):
    from silc_bench.config import load_models
    from silc_bench.results.audit import not_the_registry_run

    fields = _clip_tiny_fields()
    spec = load_models()["clip-tiny"]
    assert why in (not_the_registry_run(Result(**{**fields, **change}), spec) or ""), change


def _clip_tiny_fields() -> dict:
    """A result that stands for clip-tiny's zs-cls/shapes-cls number (what the cases above edit)."""
    return {
        "model": "clip-tiny", "variant": None, "checkpoint_sha256": fixtures.registry_sha("clip-tiny"),
        "task": "zs-cls", "task_version": 1, "dataset": "shapes-cls", "dataset_fingerprint": "f",
        "protocol": {"num_images": 360}, "metrics": {"top1": 19.72}, "precision": "fp32",
        "run_key": fixtures.MINIMAL_RUN_KEY,
    }  # fmt: skip
