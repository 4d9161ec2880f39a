"""What silc-bench says when something is missing or wrong must be true of this install:
the hint names what is really expected, and a bad value answers in one line (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from silc_bench.cli import main
from silc_bench.core.errors import UserError
from tests import fixtures, seg_fixtures


def one_line(capsys: pytest.CaptureFixture, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("silc-bench: error:"), err
    for n in needles:
        assert n in err, err
    return err


def _missing_weights(name: str) -> str:
    from silc_bench.models.resolve import load_model, parse_model_ref

    with pytest.raises(UserError) as e:
        load_model(parse_model_ref(name))
    return str(e.value)


def test_missing_weights_hint_describes_the_entrys_own_towers():
    # clip-webli-b16 has no variants: its file is a plain open_clip state dict, one tower.
    clip = _missing_weights("clip-webli-b16")
    assert "teacher" not in clip and "student" not in clip, clip
    assert "one image tower" in clip and "clip-webli-b16.safetensors" in clip, clip
    # silc-b16 is a teacher/student bundle: its hint still says so.
    silc = _missing_weights("silc-b16")
    assert "teacher./student." in silc, silc


def test_list_datasets_places_shapesworld_in_the_cache(capsys):
    from silc_bench.core.paths import cache_root

    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "generated: the cache" in out[0], out[0]
    rows = [r for r in out if "ShapesWorld" in r]
    assert rows, "no ShapesWorld rows"
    cache = str(cache_root() / "datasets")
    for row in rows:
        assert cache in row, row
    real = [r for r in out if r.startswith("| imagenet ")]
    assert real and all(cache not in r for r in real)


def test_imagefolder_counts_what_torchvision_imagefolder_counts(tmp_path):
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from silc_bench.data.classification import imagefolder
    from silc_bench.data.images import IMAGE_SUFFIXES

    assert tuple(IMAGE_SUFFIXES) == tuple(IMG_EXTENSIONS)
    base = tmp_path / "set"
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        d = base / "test" / cls
        d.mkdir(parents=True)
        for i, name in enumerate(("a.png", "b.gif", "c.JPG", "d.webp", "e.bmp")):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / name)
            assert (d / name).stat().st_size > 0, i
    ours = imagefolder(tmp_path, str(base), {"eval": ["test"]}).splits["eval"]
    ref = ImageFolder(str(base / "test"))
    assert [str(p) for p in ours.items] == [p for p, _ in ref.samples]
    assert ours.labels.tolist() == [y for _, y in ref.samples]
    assert not [p for p in ours.items if p.suffix == ".gif"]


def test_workers_beyond_the_machine_is_one_line(tmp_path, capsys, monkeypatch):
    import torch.utils.data

    def no_loader(self, *a, **kw):  # never fork 100,000 workers, even where the check fails
        raise AssertionError(f"a DataLoader was built (num_workers={kw.get('num_workers')})")

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", no_loader)
    args = fixtures.run_args("zs-cls", "tiny-random", "shapes-cls", tmp_path / "o", tmp_path)
    i = args.index("--workers")
    args[i + 1] = "100000"
    one_line(capsys, main(args), "--workers", "at most")
    assert not (tmp_path / "o").exists()


def test_truncated_png_in_a_seg_set_prints_only_our_line(tmp_path):
    root = seg_fixtures.make_all(tmp_path / "seg", n=1)
    (png,) = sorted((root / "cityscapes" / "leftImg8bit").rglob("*.png"))
    data = png.read_bytes()
    png.write_bytes(data[: len(data) // 2])  # OpenCV warns "PNG input buffer is incomplete"
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}
    args = fixtures.run_args("zs-seg", "tiny-random", "cityscapes", tmp_path / "o", root)
    args += ["--protocol", "sclip"]
    done = subprocess.run(
        [sys.executable, "-m", "silc_bench", *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("silc-bench: error:"), done.stderr
    assert png.name in lines[0], done.stderr


def test_table_with_a_results_folder_that_is_not_there(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    one_line(capsys, main(["table", "1", "--results", str(missing)]), "--results", str(missing))
    (tmp_path / "file").write_text("")
    one_line(capsys, main(["table", "1", "--results", str(tmp_path / "file")]), "not a folder")
    # With --paper the paper's numbers alone are a table: a missing folder is fine there.
    assert main(["table", "1", "--paper", "--results", str(missing)]) == 0
    assert "76.2" in capsys.readouterr().out
    assert main(["table", "1", "--results", str(tmp_path)]) == 0  # an empty folder: "–" cells


def test_default_variant_typo_names_the_variant_and_the_file(tmp_path, monkeypatch, capsys):
    reg = tmp_path / "reg.yaml"
    reg.write_text(
        "models:\n  my-model:\n    arch: {open_clip: ViT-B-16}\n    weights: {path: x.safetensors}\n"
        "    variants: {teacher: {}, student: {}}\n    default_variant: teachr\n"
    )
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    one_line(capsys, main(["list", "models"]), "'teachr'", str(reg), "teacher, student")


@pytest.mark.parametrize(
    ("task", "dataset", "folder", "get"),
    [
        ("zs-seg", "ade20k", "ade/ADEChallengeData2016", "data get ade20k --data-root"),
        ("zs-seg", "pc59", "VOCdevkit/VOC2010", "data get pc59 --data-root"),
        ("zs-cls", "imagenet", "imagenet", "download by hand"),
    ],
)
def test_missing_data_root_says_what_belongs_under_it(tmp_path, capsys, task, dataset, folder, get):
    """Not only "folder not found": which folder under it this dataset is read from, and
    the command that fetches it (or says what to fetch by hand)."""
    gone = tmp_path / "nowhere"
    code = main(
        ["run", "--task", task, "--model", "clip-tiny", "--dataset", dataset, "--data-root", str(gone)]
    )
    one_line(capsys, code, "folder not found", str(gone / folder), get)
    # The root is there but the dataset is not: the loader's layout line, and the same hint.
    code = main(
        ["run", "--task", task, "--model", "clip-tiny", "--dataset", dataset, "--data-root", str(tmp_path)]
    )
    one_line(capsys, code, get)


def _registry(tmp_path, size: int) -> str:
    """A registry entry on the shipped 64-px silc-tiny weights with another preprocess.size."""
    import yaml

    from silc_bench.core.paths import PACKAGE_DIR

    weights = PACKAGE_DIR / "weights" / "silc-tiny.safetensors"
    entry = {
        "arch": {"open_clip": "ShapesTiny-P8"},
        "weights": {"path": str(weights)},
        "preprocess": {"size": size, "resize": "shortest", "interpolation": "bicubic"},
        "tokenizer": {"type": "open_clip", "context_length": 40},
        "dense_mode": "patch-proj",
        "variants": {"teacher": None, "student": None},
        "default_variant": "teacher",
    }
    reg = tmp_path / "reg.yaml"
    reg.write_text(yaml.safe_dump({"models": {"odd-size": entry}}))
    return str(reg)


def test_a_preprocess_size_the_image_tower_cannot_take_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", _registry(tmp_path, 48))
    data = fixtures.imagefolder(tmp_path / "shapes", n_train=1, n_test=1, size=40)
    code = main(["run", "--task", "zs-cls", "--model", "odd-size", "--dataset", f"imagefolder:{data}",
                 "--limit", "2", "--workers", "0", "--out", str(tmp_path / "r"), "--quiet"])  # fmt: skip
    one_line(capsys, code, "'odd-size'", "preprocess.size 48", "takes 64x64", "set preprocess.size: 64")


def test_the_size_check_is_the_whole_image_forwards_and_spares_dense_features(tmp_path, monkeypatch):
    import torch

    from silc_bench.models import load_model, parse_model_ref

    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", _registry(tmp_path, 48))
    model = load_model(parse_model_ref("odd-size"))  # loading is fine: segmentation can use it
    feats, hw = model.backend.dense_features(torch.zeros(1, 3, 48, 48), "patch-proj")
    assert hw == (6, 6)  # the dense path resizes the position embeddings itself
    with pytest.raises(UserError, match="preprocess.size 48 gives 48x48 images"):
        model.image_features(torch.zeros(1, 3, 48, 48))
    assert model.image_features(torch.zeros(1, 3, 64, 64))["embed"].shape == (1, 128)


def test_every_registry_entry_feeds_its_tower_the_size_it_takes():
    """No entry of checkpoints.yaml is refused by the check: its preprocess size is its
    architecture's image_size (converted entries take both from their file)."""
    from silc_bench.config import load_models
    from silc_bench.models.arch import open_clip_config

    for name, spec in load_models().items():
        arch = spec.arch
        if "converted" in arch:
            continue
        cfg = arch.get("config") or open_clip_config(arch["open_clip"]) or {}
        want = (cfg.get("vision_cfg") or {}).get("image_size")
        size = spec.preprocess.get("size", want)
        assert want is not None and size == want, (name, size, want)


def test_classes_sharing_a_display_name_get_a_note(tmp_path, capsys):
    import json

    data = fixtures.imagefolder(tmp_path / "dup", n_train=1, n_test=2, size=32)
    names = (data / "classnames.txt").read_text().splitlines()
    names[2] = names[0]  # two folders, one display name
    (data / "classnames.txt").write_text("\n".join(names) + "\n")
    code = main(["run", "--task", "zs-cls", "--model", "tiny-random", "--dataset", f"imagefolder:{data}",
                 "--workers", "0", "--out", str(tmp_path / "r"), "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (path,) = (tmp_path / "r").rglob("*.json")
    res = json.loads(path.read_text())
    classes = sorted(p.name for p in (data / "test").iterdir())
    assert res["protocol"]["duplicate_classnames"] == [[classes[0], classes[2]]]
    note = (f"classes {classes[0]} and {classes[2]} share the name {names[0]!r}: identical prompts, "
            "the later one is never predicted (ties go to the lower index)")  # fmt: skip
    assert note in res["notes"], res["notes"]


def test_distinct_display_names_record_no_duplicates():
    from silc_bench.tasks.zs_cls import duplicate_prompt_classes

    texts = ["a {c}".replace("{c}", c) for c in ("x", "y", "x", "z", "x")]
    assert duplicate_prompt_classes(texts, 5) == [[0, 2, 4]]
    # two templates each: ["a", "b"] and ["a", "c"] share one prompt, not all
    assert duplicate_prompt_classes(["a", "b", "a", "c"], 2) == []
