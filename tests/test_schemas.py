"""Every file kind the suite reads has a typed schema (core/typed.py): a wrong type is one
line naming the file and the field's path, exit 2, never a traceback or another number.

Each case below was a traceback, a hang or a silently wrong run before the schemas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from silc_bench.cli import main
from silc_bench.core.typed import Check, SchemaError, check_value, conform

GOOD_ENTRY = {"arch": {"open_clip": "ViT-Tiny-P8"}, "weights": {"random_init_seed": 0}}


def _one_line_exit_2(argv: list[str], capsys, *needles: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# (id, the entry's edit, what the message must name)
REGISTRY_CASES = [
    ("arch-a-string", {"arch": "ViT-Tiny-P8"}, ("arch: expected a mapping",)),
    (
        "arch-two-kinds",
        {"arch": {"open_clip": "ViT-Tiny-P8", "converted": "big_vision"}},
        ("exactly one of",),
    ),
    ("weights-a-string", {"weights": "w.safetensors"}, ("weights: expected a mapping",)),
    ("preprocess-a-list", {"preprocess": [224]}, ("preprocess: expected a mapping",)),
    ("tags-a-number", {"tags": 5}, ("tags: expected a list of a string, found 5",)),
    ("context-length-text", {"tokenizer": {"context_length": "40"}}, ("tokenizer.context_length", "'40'")),
    (
        "context-length-huge",
        {"tokenizer": {"context_length": 100000}},
        ("tokenizer.context_length", "<= 4096"),
    ),
    ("mean-of-two", {"preprocess": {"mean": [0.5, 0.5]}}, ("preprocess.mean", "exactly 3 items")),
    ("std-zero", {"preprocess": {"std": [0.5, 0.0, 0.5]}}, ("preprocess.std[1]",)),
    ("size-big", {"preprocess": {"size": "big"}}, ("preprocess.size: expected a whole number, found 'big'",)),
    ("resize-typo", {"preprocess": {"resize": "shortest-side"}}, ("preprocess.resize", "squash_crop")),
    (
        "sha-not-hex",
        {"weights": {"path": "w.safetensors", "sha256": "abc"}},
        ("weights.sha256", "64 lowercase"),
    ),
    ("seed-negative", {"weights": {"random_init_seed": -1}}, ("weights.random_init_seed",)),
    ("backend-typo", {"backend": "openclip"}, ("backend: expected one of", "'tcl'")),
    ("dense-mode-typo", {"dense_mode": "maskclp"}, ("dense_mode",)),
    ("variant-not-a-mapping", {"variants": {"teacher": 3}}, ("variants.teacher",)),
    (
        "default-variant-typo",
        {"variants": {"teacher": {}}, "default_variant": "techer"},
        ("'techer'", "teacher"),
    ),
    ("expected-text", {"expected": {"zs-cls/x": {"top1": "high"}}}, ("expected", "top1")),
    ("paper-row-missing-size", {"paper_row": {"model": "SILC"}}, ("paper_row needs the key(s) ['size']",)),
]


@pytest.mark.parametrize("case", REGISTRY_CASES, ids=[c[0] for c in REGISTRY_CASES])
def test_a_mistyped_registry_entry_is_one_line_naming_the_field(case, tmp_path, monkeypatch, capsys):
    _, edit, needles = case
    reg = tmp_path / "extra.yaml"
    reg.write_text(yaml.safe_dump({"models": {"mine": {**GOOD_ENTRY, **edit}}}))
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    _one_line_exit_2(["list", "models"], capsys, str(reg), "'mine'", *needles)


def test_the_good_entry_of_the_table_loads(tmp_path, monkeypatch, capsys):
    reg = tmp_path / "extra.yaml"
    reg.write_text(yaml.safe_dump({"models": {"mine": GOOD_ENTRY}}))
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    assert main(["list", "models"]) == 0
    assert "mine" in capsys.readouterr().out


def _task_root(tmp_path: Path, task_file: dict, dataset_file: dict, extra: dict | None = None) -> Path:
    root = tmp_path / "tasks"
    folder = root / "my-cls"
    folder.mkdir(parents=True)
    (folder / "_task.yaml").write_text(yaml.safe_dump(task_file))
    (folder / "mine.yaml").write_text(yaml.safe_dump(dataset_file))
    for name, body in (extra or {}).items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(body))
    return root


GOOD_TASK = {"type": "zs-cls", "version": 1, "protocol": {"topk": [1]}}
GOOD_DATA = {"data": {"format": "imagefolder", "path": "x", "splits": {"eval": "test"}}}
TASK_CASES = [
    ("version-text", {**GOOD_TASK, "version": "one"}, GOOD_DATA, ("version: expected a whole number",)),
    ("version-zero", {**GOOD_TASK, "version": 0}, GOOD_DATA, ("version", ">= 1")),
    ("include-a-number", GOOD_TASK, {**GOOD_DATA, "include": 5}, ("include: expected a string or null",)),
    ("data-a-list", GOOD_TASK, {"data": ["imagefolder"]}, ("data: expected a mapping",)),
    ("standard-images-text", GOOD_TASK, {**GOOD_DATA, "standard_images": "many"}, ("standard_images",)),
    ("format-typo", GOOD_TASK, {"data": {**GOOD_DATA["data"], "format": "imagefolders"}}, ("data.format",)),
    ("no-format", GOOD_TASK, {"data": {"path": "x", "splits": {"eval": "test"}}}, ("format",)),
    (
        "splits-no-eval",
        GOOD_TASK,
        {"data": {**GOOD_DATA["data"], "splits": {"train": "t"}}},
        ("data.splits",),
    ),
    ("data-key-typo", GOOD_TASK, {"data": {**GOOD_DATA["data"], "pth": "x"}}, ("['data.pth']",)),
    (
        "topk-text",
        {**GOOD_TASK, "protocol": {"topk": ["1"]}},
        GOOD_DATA,
        ("topk[0]: expected a whole number",),
    ),
    ("templates-a-list", {**GOOD_TASK, "protocol": {"templates": ["a {c}"]}}, GOOD_DATA, ("templates",)),
]


@pytest.mark.parametrize("case", TASK_CASES, ids=[c[0] for c in TASK_CASES])
def test_a_mistyped_task_file_is_one_line_naming_the_field(case, tmp_path, monkeypatch, capsys):
    _, task_file, dataset_file, needles = case
    monkeypatch.setenv("SILC_BENCH_TASK_PATH", str(_task_root(tmp_path, task_file, dataset_file)))
    argv = ["run", "--task", "my-cls", "--model", "tiny-random", "--dataset", "mine"]
    _one_line_exit_2([*argv, "--data-root", str(tmp_path), "--out", str(tmp_path / "out")], capsys, *needles)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))


def test_a_mistyped_profile_is_one_line(tmp_path, monkeypatch, capsys):
    root = _task_root(tmp_path, GOOD_TASK, GOOD_DATA)
    (root / "my-cls" / "profiles").mkdir()
    (root / "my-cls" / "profiles" / "p.yaml").write_text(yaml.safe_dump({"version": "2", "protocol": {}}))
    monkeypatch.setenv("SILC_BENCH_TASK_PATH", str(root))
    argv = ["run", "--task", "my-cls", "--model", "tiny-random", "--dataset", "mine", "--protocol", "p"]
    _one_line_exit_2([*argv, "--data-root", str(tmp_path)], capsys, "p.yaml", "version")


def test_a_karpathy_caption_that_is_not_text_is_one_line(tmp_path, capsys):
    base = tmp_path / "coco"
    (base / "val2014").mkdir(parents=True)
    images = [{"filename": "a.jpg", "split": "test", "sentences": [{"raw": 123}]}]
    (base / "dataset_coco.json").write_text(json.dumps({"images": images}))
    argv = ["run", "--task", "retrieval", "--model", "tiny-random", "--dataset", "coco"]
    _one_line_exit_2([*argv, "--data-root", str(tmp_path)], capsys, "images[0]", "sentences[0].raw", "123")


def test_karpathy_files_keep_their_publishers_extra_keys():
    from silc_bench.core.typed import check_mapping
    from silc_bench.data.retrieval import KarpathyImage

    entry = {"filename": "a.jpg", "split": "test", "sentences": [{"raw": "a cat", "tokens": ["a"], "x": 1}],
             "cocoid": 5, "something_new": True}  # fmt: skip
    check_mapping(entry, KarpathyImage, "images[0]")  # no error


def test_an_import_file_in_utf16_is_read_and_a_mistyped_json_row_is_one_line(tmp_path, capsys):
    sha = "0" * 64
    csv16 = tmp_path / "rows.csv"
    csv16.write_text(f"model,checkpoint_sha256,dataset,mIoU\nsilc-b16,{sha},ade20k,31.5\n", encoding="utf-16")
    assert main(["import", "--task", "ov-seg", str(csv16), "--out", str(tmp_path / "out")]) == 0
    written = json.loads((tmp_path / "out" / "silc-b16" / "ov-seg" / "ade20k.json").read_text())
    assert written["metrics"] == {"mIoU": 31.5}
    capsys.readouterr()
    rows = tmp_path / "rows.json"
    rows.write_text(
        json.dumps([{"model": ["silc-b16"], "checkpoint_sha256": sha, "dataset": "ade20k", "mIoU": 3}])
    )
    _one_line_exit_2(
        ["import", "--task", "ov-seg", str(rows), "--out", str(tmp_path / "o2")], capsys, "row 1", "model"
    )
    latin = tmp_path / "latin.csv"
    latin.write_bytes("model,checkpoint_sha256,dataset,mIoU\nsilc-b16 é,".encode("latin-1") + b"x\n")
    _one_line_exit_2(
        ["import", "--task", "ov-seg", str(latin), "--out", str(tmp_path / "o3")], capsys, "UTF-8"
    )


def test_a_result_file_with_a_mistyped_field_is_refused_by_its_reader(tmp_path):
    from silc_bench.core.errors import UserError
    from silc_bench.results.schema import Result, read_result, write_result

    result = Result("m", None, "0" * 64, "zs-cls", 1, "d", "f", {}, {"top1": 50.0}, "fp32", seeds=[0])
    write_result(tmp_path / "good.json", result)
    good = json.loads((tmp_path / "good.json").read_text())
    assert read_result(tmp_path / "good.json") == result
    for field, value, needle in [
        ("seeds", ["0"], "seeds[0]"),
        ("wall_s", "fast", "wall_s"),
        ("per_class", {"cat": "high"}, "per_class.cat"),
        ("task_version", -1, "task_version"),
        ("notes", "one note", "notes"),
        ("run_key", [], "run_key"),
    ]:
        path = tmp_path / f"{field}.json"
        path.write_text(json.dumps({**good, field: value}))
        with pytest.raises(UserError, match=needle.replace("[", r"\[")):
            read_result(path)


@dataclass
class Inner:
    a: int


@dataclass
class Outer:
    inner: Inner
    pair: tuple[float, float] = (0.0, 1.0)


def test_the_checker_itself():
    check_value([1, 2], list[int], "x")
    check_value((0.4, 1), tuple[float, float], "x")
    with pytest.raises(SchemaError, match=r"x: expected a list of 2"):
        check_value([0.4], tuple[float, float], "x")
    with pytest.raises(SchemaError, match="x: expected a whole number, found True"):
        check_value(True, int, "x")
    with pytest.raises(SchemaError, match="x: expected a finite number"):
        from typing import Annotated

        check_value(float("nan"), Annotated[float, Check(min=0)], "x")
    built = conform(Outer, {"inner": {"a": 1}, "pair": [0, 1]}, "f.yaml")
    assert built.inner == Inner(1) and built.pair == (0.0, 1.0) and isinstance(built.pair[0], float)
    with pytest.raises(
        SchemaError, match=r"f.yaml: unknown key\(s\) \['inner.b'\]; valid keys in inner: \['a'\]"
    ):
        conform(Outer, {"inner": {"a": 1, "b": 2}}, "f.yaml")
