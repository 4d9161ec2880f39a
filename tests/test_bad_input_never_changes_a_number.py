"""Inputs that must be refused, or must never change a number silently: shifted import
fields, impossible metrics, symlinked image folders, unchecked labels, look-alike weights."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import open_clip
import pytest
import yaml

from silc_bench.cli import main
from silc_bench.results.schema import Result, write_result
from tests import fixtures, seg_fixtures

pytestmark = pytest.mark.usefixtures("one_thread")


def one_line_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("silc-bench: error:"), err
    for n in needles:
        assert n in err, err
    return err


def test_same_weights_under_another_architecture_miss_the_cache(
    trained_weights, data_root, tmp_path, monkeypatch, capsys
):
    cfg = open_clip.get_model_config("ViT-Tiny-P8")
    cfg["quick_gelu"] = True
    reg = tmp_path / "reg.yaml"
    reg.write_text(
        yaml.safe_dump(
            {"models": {"qg": {"arch": {"config": cfg}, "weights": {"path": str(trained_weights)}}}}
        )
    )
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    ds = f"imagefolder:{data_root / 'shapes'}"
    assert (
        main(
            fixtures.run_args(
                "zs-cls",
                "open_clip:ViT-Tiny-P8",
                ds,
                tmp_path / "a",
                data_root,
                "--weights",
                str(trained_weights),
            )
        )
        == 0
    )
    assert main(fixtures.run_args("zs-cls", "qg", ds, tmp_path / "b", data_root)) == 0
    assert main(fixtures.run_args("zs-cls", "qg", ds, tmp_path / "c", data_root, "--no-cache")) == 0
    got = {k: json.loads(next((tmp_path / k).rglob("*.json")).read_text()) for k in "bc"}
    assert got["b"]["env"]["cache"]["hits"] == 0  # the same sha256 is not the same model
    assert got["b"]["metrics"] == got["c"]["metrics"]


def test_import_rejects_shifted_fields_duplicate_columns_booleans_and_spellings(tmp_path, capsys):
    sha = "a" * 64
    cases = {
        "5 fields for 4 columns": f"model,checkpoint_sha256,dataset,mIoU\nsilc-b16,{sha},ade20k,13,1\n",
        "more than once": f"model,checkpoint_sha256,dataset,mIoU,mIoU\nsilc-b16,{sha},ade20k,13.1,99\n",
        "duplicate row": (
            f"model,checkpoint_sha256,dataset,mIoU\nsilc-b16,{sha},ade20k,13\nsilc-b16:teacher,{sha},ade20k,14\n"
        ),
    }
    for needle, text in cases.items():
        f = tmp_path / "in.csv"
        f.write_text(text)
        one_line_error(
            capsys, main(["import", "--task", "ov-seg", str(f), "--out", str(tmp_path / "o")]), needle
        )
    j = tmp_path / "in.json"
    j.write_text(
        json.dumps([{"model": "silc-b16", "checkpoint_sha256": sha, "dataset": "ade20k", "mIoU": True}])
    )
    one_line_error(
        capsys,
        main(["import", "--task", "ov-seg", str(j), "--out", str(tmp_path / "o")]),
        "mIoU: expected a number",
    )
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "clip-webli-b16").write_text("")  # a file where a folder must go
    f.write_text(
        f"model,checkpoint_sha256,dataset,mIoU\nsilc-b16,{sha},ade20k,13\nclip-webli-b16,{sha},ade20k,12\n"
    )
    one_line_error(
        capsys, main(["import", "--task", "ov-seg", str(f), "--out", str(tmp_path / "o2")]), "--out"
    )
    assert not (tmp_path / "o2" / "silc-b16").exists()  # all or nothing


def _result(out: Path, name: str, metrics: dict, **kw) -> Path:
    r = Result(
        model="silc-tiny",
        variant=kw.pop("variant", "teacher"),
        checkpoint_sha256=kw.pop("checkpoint_sha256", fixtures.registry_sha("silc-tiny")),
        run_key=kw.pop("run_key", fixtures.MINIMAL_RUN_KEY),
        task="zs-cls",
        task_version=1,
        dataset="shapes-cls",
        dataset_fingerprint="f",
        protocol=kw.pop("protocol", {}),
        metrics=metrics,
        precision="fp32",
        **kw,
    )
    path = out / name / "zs-cls" / "shapes-cls.json"
    write_result(path, r)
    return path


def test_duplicates_never_hide_a_regression_and_other_weights_never_stand_in(tmp_path, capsys):
    out = tmp_path / "r"
    _result(out, "a", {"top1": 16.39, "top5": 84.44})
    _result(out, "b", {"top1": 99.0, "top5": 99.0})
    assert main(["check", str(out), "--regression"]) == 1
    assert "top1 = 99.00" in capsys.readouterr().err
    other = tmp_path / "o"
    _result(other, "a", {"top1": 99.0, "top5": 99.0}, run_key={"model": {"weights_sha256": ["0" * 64]}})
    assert main(["check", str(other), "--regression", "--models", "silc-tiny"]) == 1
    err = capsys.readouterr().err
    assert "silc-tiny top1: no result" in err and "99.00" not in err  # other weights are not silc-tiny


def test_impossible_metrics_and_bad_flags_are_refused(tmp_path, capsys):
    out = tmp_path / "r"
    path = _result(out, "a", {"top1": 16.39, "top5": 84.44})
    for bad in ('"top1": 250', '"top1": -5', '"top1": 90, "top5": 80'):
        d = json.loads(path.read_text())
        d["metrics"] = json.loads("{" + bad + "}")
        path.write_text(json.dumps(d))
        one_line_error(capsys, main(["check", str(out)]), str(path))
    d["metrics"] = {"top1": 16.39}
    d["model"] = None
    path.write_text(json.dumps(d))
    one_line_error(capsys, main(["check", str(out)]), "model: expected a string, found None")
    for tol in ("nan", "-1", "inf"):
        one_line_error(capsys, main(["check", str(out), "--regression", "--tolerance", tol]), "--tolerance")
    one_line_error(
        capsys,
        main(["run", "--task", "zs-cls", "--model", "silc-tiny:", "--dataset", "shapes-cls"]),
        "empty variant",
    )


def test_imagefolder_symlinks_that_change_the_number(tmp_path, capsys):
    def fresh(name: str) -> Path:
        return fixtures.imagefolder(tmp_path / name / "base", n_train=2, n_test=2, size=32)

    a = fresh("a")
    shutil.rmtree(a / "test")
    (a / "test").symlink_to(a / "train")

    def run(d: Path, task: str = "fs-cls") -> int:
        return main(fixtures.run_args(task, "tiny-random", f"imagefolder:{d}", tmp_path / "o", tmp_path))

    one_line_error(capsys, run(a), "same folder")
    b = fresh("b")
    (b / "test" / "red_circle" / "zz.png").symlink_to(b / "test" / "green_square" / "0000.png")
    one_line_error(capsys, run(b, "zs-cls"), "same image file")
    c = fresh("c")
    (c / "test" / "red_circle" / "zz.png").symlink_to(c / "nowhere.png")
    one_line_error(capsys, run(c, "zs-cls"), "broken symlink")
    assert not (tmp_path / "o").exists()


def test_cifar_labels_are_checked(tmp_path, capsys):
    import pickle

    root = fixtures.cifar100(tmp_path / "d")
    test = root / "cifar-100-python" / "test"
    d = pickle.loads(test.read_bytes())
    d[b"fine_labels"] = [150] + d[b"fine_labels"][1:]
    test.write_bytes(pickle.dumps(d))
    one_line_error(
        capsys,
        main(fixtures.run_args("zs-cls", "tiny-random", "cifar100", tmp_path / "o", root)),
        "outside 0..99",
    )


def test_missing_label_map_and_listing_loop_are_one_line(tmp_path, capsys):
    root = seg_fixtures.make_all(tmp_path / "seg", n=2)
    labels = sorted((root / "VOCdevkit" / "VOC2012" / "SegmentationClass").glob("*.png"))
    labels[0].unlink()
    args = fixtures.run_args("zs-seg", "tiny-random", "voc21", tmp_path / "o", root, "--protocol", "sclip")
    one_line_error(capsys, main(args), labels[0].name)
    assert not list((tmp_path / "o").rglob("*.json"))


def test_generated_set_with_a_symlinked_folder_is_regenerated(tmp_path, monkeypatch, capsys):
    from silc_bench.data import shapesworld

    small = shapesworld.Sizes(train_scenes=4, cls_per_class=(1, 2), retrieval_scenes=4, seg_scenes=2)
    monkeypatch.setattr(shapesworld.generate, "__defaults__", (0, small))
    root = shapesworld.ensure(tmp_path / "datasets")
    extra = tmp_path / "extra"
    shutil.copytree(root / "seg" / "images", extra)
    os.symlink(extra, root / "seg" / "images" / "zz")
    assert "symlink" in (shapesworld.verify(root) or "")
    capsys.readouterr()
    shapesworld.ensure(tmp_path / "datasets")
    assert "regenerating" in capsys.readouterr().err and shapesworld.verify(root) is None
    assert np.isfinite(len(list(root.rglob("*.png"))))


# ------------------------------------------------------------ import, table and figure outputs


def test_imported_results_do_not_break_checks_and_the_tolerance_edge_passes(tmp_path, capsys):
    out = tmp_path / "r"
    example = Path(__file__).parent / "data" / "ov_seg_example.csv"
    assert main(["import", "--task", "ov-seg", str(example), "--out", str(out)]) == 0
    _result(out, "silc-tiny@student", {"top1": 20.67, "top5": 89.44}, variant="student")
    capsys.readouterr()
    assert main(["check", str(out), "--regression"]) == 0, capsys.readouterr().err  # Δ exactly -1.00
    assert main(["table", "shapes", "--results", str(out)]) == 0


def test_editing_a_local_dir_config_replaces_the_result(tmp_path, capsys):
    ex = tmp_path / "ex"
    assert main(["export", "tiny-random", "--out", str(ex)]) == 0
    args = fixtures.run_args(
        "zs-cls", f"local-dir:{ex}", "shapes-cls", tmp_path / "o", tmp_path, "--limit", "8"
    )
    assert main(args) == 0
    cfg = json.loads((ex / "open_clip_config.json").read_text())
    cfg["preprocess_cfg"]["mean"] = [0.5, 0.5, 0.5]
    (ex / "open_clip_config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    assert main(args) == 0
    assert "config_sha256" in capsys.readouterr().err


def test_model_names_with_slashes_never_share_a_folder():
    from silc_bench.results.key import model_dirname

    assert model_dirname("hf-hub:a/b") != model_dirname("hf-hub:a_b")
    assert model_dirname("silc-tiny:student") == "silc-tiny@student"


def test_import_table_and_figure_guard_their_outputs(tmp_path, capsys):
    sha = "a" * 64
    f = tmp_path / "in.csv"
    f.write_text(
        f"model,checkpoint_sha256,dataset,mIoU\nsilc-b16,{sha},ade847,13\nsilc-b16,{sha},ade20k,36\n"
    )
    (tmp_path / "k" / "silc-b16" / "ov-seg" / "ade20k.json").mkdir(parents=True)
    one_line_error(
        capsys, main(["import", "--task", "ov-seg", str(f), "--out", str(tmp_path / "k")]), "not a file"
    )
    assert not (tmp_path / "k" / "silc-b16" / "ov-seg" / "ade847.json").exists()
    f.write_text(
        f"\ufeffmodel,checkpoint_sha256,dataset,mIoU\nsilc-tiny,{sha},ade847,13\n"
    )  # BOM, no paper_row
    one_line_error(
        capsys, main(["import", "--task", "ov-seg", str(f), "--out", str(tmp_path / "k2")]), "paper_row"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["table", "1", "--results", str(empty), "--out", str(tmp_path / "new" / "dir" / "t.md")]) == 0
    capsys.readouterr()
    args = ["figure", "--models", "silc-tiny,nope", "--dataset", "shapes-seg", "--out", str(tmp_path / "f")]
    one_line_error(capsys, main([*args, "--results", str(tmp_path / "fr")]), "nope")
    assert not (tmp_path / "fr").exists()  # no model ran before every name was checked
    one_line_error(capsys, main(["table", "9"]), "silc-bench: error: table:")


def test_registry_reference_numbers_are_validated(tmp_path, monkeypatch, capsys):
    reg = tmp_path / "reg.yaml"
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    base = {"arch": {"open_clip": "ViT-Tiny-P8"}, "weights": {"random_init_seed": 0}}
    for extra, needle in (
        ({"expected": {"zs-cls/shapes-cls": {"top1": None}}}, "finite number"),
        (
            {
                "expected": {"zs-cls/shapes-cls": {"top1": 5}},
                "tolerance": {"zs-cls/shapes-cls": {"top1": -5}},
            },
            ">= 0",
        ),
        (
            {"expected": {"zs-cls/shapes-cls": {"top1": 5}}, "tolerance": {"zs-cls/shapes-cls": {"top5": 1}}},
            "no expected",
        ),
    ):
        reg.write_text(yaml.safe_dump({"models": {"bad": {**base, **extra}}}))
        one_line_error(capsys, main(["list", "models"]), needle)


def test_table_ranks_shown_values_and_table_4_reads_variants(tmp_path, capsys):
    res = tmp_path / "r"
    common = {
        "checkpoint_sha256": "0" * 64,
        "run_key": fixtures.MINIMAL_RUN_KEY,
        "task_version": 1,
        "dataset_fingerprint": "f",
        "precision": "fp32",
    }
    for name, v in (("silc-b16", 75.301), ("silc-star-b16", 75.299)):
        r = Result(model=name, variant="teacher", task="zs-cls", dataset="imagenet", protocol={},
                   metrics={"top1": v}, **common)  # fmt: skip
        write_result(res / name / "zs-cls" / "imagenet.json", r)
    r = Result(model="silc-b16:teacher", variant="teacher", task="zs-seg", dataset="voc21", protocol={},
               metrics={"mIoU": 40.0}, profile="tcl", **common)  # fmt: skip
    write_result(res / "silc-b16@teacher" / "zs-seg" / "voc21.json", r)
    assert main(["table", "1", "--results", str(res)]) == 0
    md = capsys.readouterr().out
    assert md.count("**75.30**") == 2 and "<u>75.30</u>" not in md  # equal as shown: both best
    assert main(["table", "4", "--results", str(res)]) == 0
    assert "| SILC " in (out := capsys.readouterr().out) and "40.00" in out


@pytest.mark.parametrize("name", ["..", "../../x", ".hidden", "a b", "semi;colon"])
def test_names_never_become_paths_outside_out(name, tmp_path):
    from silc_bench.core.errors import UserError
    from silc_bench.results.key import ResultKey

    with pytest.raises(UserError, match="cannot name a results file"):
        ResultKey(name, "zs-cls", "cifar100", "default", "default", ()).to_path(tmp_path)
    with pytest.raises(UserError, match="cannot name a results file"):
        ResultKey("silc-tiny", "zs-cls", name, "default", "default", ()).to_path(tmp_path)


def test_odd_folder_names_are_rewritten_and_stay_inside_out(tmp_path):
    from silc_bench.results.key import ResultKey

    for ref, ds in [("local-dir:/a b/../c", "cifar100"), ("silc-tiny", "imagefolder:/data/my pets;x")]:
        path = ResultKey(ref, "zs-cls", ds, "default", "default", ()).to_path(tmp_path / "out")
        assert path.resolve().is_relative_to((tmp_path / "out").resolve()), path
        assert " " not in str(path.relative_to(tmp_path)) and ";" not in str(path)
