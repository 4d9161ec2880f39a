"""Task discovery, includes, profiles, result naming and atomic writes."""

from __future__ import annotations

import json
import shutil

import pytest

from silc_bench.config import list_datasets, list_profiles, list_tasks, load_task
from silc_bench.core.errors import UserError
from silc_bench.results.key import dataset_filename, model_dirname
from silc_bench.results.schema import Result, read_result, write_result


def test_discovery():
    assert list_tasks() == ["fs-cls", "retrieval", "zs-cls", "zs-seg"]
    assert list_profiles("zs-seg") == ["sclip", "tcl"]
    assert {"imagenet", "cifar100", "imagefolder"} <= set(list_datasets("zs-cls"))
    assert list_datasets("retrieval") == ["coco", "flickr30k", "shapes-retrieval", "wds"]
    assert "big_vision" in list_profiles("zs-cls")


def test_profile_merges_over_dataset():
    default = load_task("zs-cls", "cifar100")
    bv = load_task("zs-cls", "cifar100", "big_vision")
    # the profile wins over the dataset: big_vision uses the 80 CLIP-paper templates everywhere
    assert default.protocol["templates"] == "cifar" and bv.protocol["templates"] == "imagenet"
    assert not default.protocol["canonicalize_text"] and bv.protocol["canonicalize_text"]
    assert bv.profile == "big_vision"


def test_a_variant_is_one_yaml_file(tmp_path, monkeypatch):
    from silc_bench.core.paths import REPO_ROOT

    tasks = tmp_path / "tasks"
    shutil.copytree(REPO_ROOT / "tasks", tasks)
    (tasks / "zs-cls" / "cifar100-simple.yaml").write_text(
        "include: cifar100\nprotocol: {templates: imagenet}\n"
    )
    monkeypatch.setenv("SILC_BENCH_TASKS", str(tasks))
    spec = load_task("zs-cls", "cifar100-simple")
    assert spec.data["format"] == "cifar100" and spec.protocol["templates"] == "imagenet"
    (tasks / "zs-seg" / "shapes-small.yaml").write_text("include: shapes-seg\nprotocol: {image_batch: 2}\n")
    small = load_task("zs-seg", "shapes-small", "sclip")
    assert small.protocol["crop"] == 32 and small.protocol["image_batch"] == 2  # profile overrides follow
    (tasks / "zs-cls" / "loop.yaml").write_text("include: loop\n")
    with pytest.raises(UserError, match="include cycle"):
        load_task("zs-cls", "loop")


def test_result_names():
    assert model_dirname("silc-tiny:student") == "silc-tiny@student"
    assert model_dirname("open_clip:ViT-B-16") == "open_clip@ViT-B-16"
    assert dataset_filename("imagefolder:/data/my/pets/") == "imagefolder-pets"
    assert dataset_filename("ade20k", "sclip") == "ade20k@sclip"
    assert dataset_filename("ade20k") == "ade20k"


def _result(**kw) -> Result:
    base = dict(
        model="m",
        variant=None,
        checkpoint_sha256="0" * 64,
        task="zs-cls",
        task_version=1,
        dataset="d",
        dataset_fingerprint="sha256:x",
        protocol={"num_classes": 2},
        metrics={"top1": 50.0},
        precision="fp32",
    )
    return Result(**{**base, **kw})


def test_atomic_write_and_read_back(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_result(path, _result())
    back = read_result(path)
    assert back.metrics == {"top1": 50.0} and back.schema_version == 2
    assert path.read_text().startswith('{\n  "schema_version": 2')
    with pytest.raises(ValueError):
        write_result(tmp_path / "nan.json", _result(metrics={"top1": float("nan")}))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.json"]  # no partial file


def test_schema_1_files_are_read(tmp_path):
    """Files written before the run key still read (they are never reused, only replaced)."""
    path = tmp_path / "old.json"
    write_result(path, _result())
    d = json.loads(path.read_text())
    d["schema_version"] = 1
    del d["run_key"]
    path.write_text(json.dumps(d))
    back = read_result(path)
    assert back.schema_version == 1 and back.run_key == {} and back.metrics == {"top1": 50.0}


def test_your_own_task_folders_extend_the_built_in_ones(tmp_path, monkeypatch):
    from silc_bench.config import list_datasets, list_profiles, load_task
    from silc_bench.core.errors import UserError

    extra = tmp_path / "mine"
    (extra / "zs-cls" / "profiles").mkdir(parents=True)
    (extra / "zs-cls" / "cifar100-plain.yaml").write_text(
        "include: cifar100\nprotocol: {templates: imagenet}\n"
    )
    (extra / "zs-cls" / "profiles" / "mine.yaml").write_text("protocol: {bare_template: true}\n")
    monkeypatch.setenv("SILC_BENCH_TASK_PATH", str(extra))
    assert "cifar100-plain" in list_datasets("zs-cls") and "cifar100" in list_datasets("zs-cls")
    assert "mine" in list_profiles("zs-cls")
    spec = load_task("zs-cls", "cifar100-plain", "mine")
    assert spec.protocol["templates"] == "imagenet" and spec.protocol["bare_template"] is True
    assert spec.data["format"] == "cifar100"  # inherited from the built-in file
    (extra / "zs-cls" / "cifar100.yaml").write_text("data: {format: cifar100}\n")
    with pytest.raises(UserError, match="defined twice"):
        load_task("zs-cls", "cifar100")


def test_a_yaml_alias_bomb_is_refused_before_anything_walks_it(tmp_path, monkeypatch, capsys):
    from silc_bench.cli import main

    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefg", "bcdefgh"):
        rows.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    rows.append("models: {x: *h}")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(bomb))
    assert main(["list", "models"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "alias" in err and str(bomb) in err


def test_registry_anchors_are_still_fine():
    from silc_bench.config import load_models

    assert load_models()["clip-tiny"].preprocess["size"] == 64  # checkpoints.yaml uses &tiny_pp


@pytest.mark.parametrize("topk", ["[0]", "[]", "[true]"])
def test_a_zs_cls_topk_that_is_not_a_rank_is_refused(topk, tmp_path, monkeypatch, capsys):
    import shutil

    from silc_bench.cli import main
    from silc_bench.core.paths import REPO_ROOT

    tasks = tmp_path / "tasks"
    shutil.copytree(REPO_ROOT / "tasks", tasks)
    (tasks / "zs-cls" / "shapes-odd.yaml").write_text(f"include: shapes-cls\nprotocol: {{topk: {topk}}}\n")
    monkeypatch.setenv("SILC_BENCH_TASKS", str(tasks))
    args = ["run", "--task", "zs-cls", "--model", "tiny-random", "--dataset", "shapes-odd", "--limit", "2",
            "--out", str(tmp_path / "o"), "--device", "cpu", "--quiet", "--workers", "0"]  # fmt: skip
    assert main(args) == 2
    assert "topk" in capsys.readouterr().err and not (tmp_path / "o").exists()
