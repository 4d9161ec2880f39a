"""ShapesWorld: determinism, layouts, and every registered shapes dataset end to end."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from silc_bench.cli import main
from silc_bench.data.shapesworld import (
    COLOURS,
    SEG_CLASSES,
    SHAPE_SEG_CLASSES,
    SHAPES,
    TEXTURES,
    Sizes,
    captions,
    generate,
)

SMALL = Sizes(train_scenes=6, cls_per_class=(1, 1), retrieval_scenes=4, seg_scenes=3)


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_generator_is_deterministic_and_seeded(tmp_path):
    a = generate(tmp_path / "a", seed=3, sizes=SMALL)
    b = generate(tmp_path / "b", seed=3, sizes=SMALL)
    c = generate(tmp_path / "c", seed=4, sizes=SMALL)
    assert _tree_hash(a) == _tree_hash(b) != _tree_hash(c)


def test_layouts_and_captions(tmp_path):
    root = generate(tmp_path / "sw", seed=0, sizes=SMALL)
    rows = list(csv.DictReader(open(root / "train" / "manifest.csv")))
    assert len(rows) == 6 * 5 and all(r["caption"].strip() for r in rows)
    assert all((root / "train" / r["image"]).is_file() for r in rows)
    assert len(list((root / "cls" / "test").iterdir())) == 36
    meta = json.loads((root / "retrieval" / "dataset_shapes.json").read_text())
    assert all(len(e["sentences"]) == 5 for e in meta["images"])
    lab = np.array(Image.open(root / "seg" / "annotations" / "00000.png"))
    img = Image.open(root / "seg" / "images" / "00000.png")
    assert lab.shape == (img.height, img.width) and lab.max() < len(SEG_CLASSES) and (lab == 0).any()
    by_shape = np.array(Image.open(root / "seg" / "annotations_shape" / "00000.png"))
    assert ((lab > 0) == (by_shape > 0)).all() and by_shape.max() < len(SHAPE_SEG_CLASSES)


def test_captions_name_shapes_alone_and_the_background():
    objs = [("red", "circle", "on the left"), ("blue", "cross", "at the top")]
    caps = captions(objs, "striped")
    assert len(caps) == 5 and "a circle and a cross." in caps
    shape_only = [c for c in caps if not any(col in c for col in COLOURS)]
    assert shape_only == ["a circle and a cross."]
    assert "a red shape and a blue shape." in caps
    assert sum("striped background" in c for c in caps) >= 2
    named = [c for c in caps if c != "a red shape and a blue shape."]
    assert all("circle" in c and "cross" in c for c in named)


def test_seg_objects_do_not_overlap_and_keep_the_training_scale(tmp_path):
    """Every seg scene has whole shapes: the labelled area of each connected object matches a
    drawn shape of the training scenes' radius range (objects never merge or get cut)."""
    from scipy import ndimage

    sizes = Sizes(train_scenes=2, cls_per_class=(1, 1), retrieval_scenes=2, seg_scenes=12)
    root = generate(tmp_path / "sw", seed=1, sizes=sizes)
    r_lo, r_hi = sizes.image * 0.12, sizes.image * 0.22
    for p in sorted((root / "seg" / "annotations").glob("*.png")):
        lab = np.array(Image.open(p))
        comps, n = ndimage.label(lab > 0)
        lo, hi = sizes.seg_objects
        assert 1 <= n <= hi
        for k in range(1, n + 1):
            area = (comps == k).sum()
            # the smallest shape (a cross) covers 5/9 of (2r)², the largest (a square) all of it
            assert 0.3 * (2 * r_lo) ** 2 <= area <= (2 * r_hi + 2) ** 2
    assert set(TEXTURES) == {"striped", "checkered"} and len(SHAPES) == 6


def test_registered_shapes_datasets_run(tmp_path, capsys):
    out = tmp_path / "r"
    common = ["--model", "tiny-random", "--out", str(out), "--quiet", "--workers", "0"]
    for task, ds, extra in (
        ("zs-cls", "shapes-cls", []),
        ("fs-cls", "shapes-cls", []),
        ("retrieval", "shapes-retrieval", ["--limit", "100"]),
        ("zs-seg", "shapes-seg", ["--limit", "4"]),
        ("zs-seg", "shapes-seg-shape", ["--limit", "2"]),
    ):
        assert main(["run", "--task", task, "--dataset", ds, *common, *extra]) == 0, capsys.readouterr().err
    res = json.loads((out / "tiny-random" / "retrieval" / "shapes-retrieval+limit-100.json").read_text())
    assert res["protocol"]["num_images"] == 100 and res["protocol"]["num_captions"] == 500
    seg = json.loads((out / "tiny-random" / "zs-seg" / "shapes-seg+limit-4.json").read_text())
    assert seg["protocol"]["crop"] == 32 and seg["protocol"]["num_classes"] == 7
    assert set(seg["per_class"]) <= {"background", *COLOURS}
    by_shape = json.loads((out / "tiny-random" / "zs-seg" / "shapes-seg-shape+limit-2.json").read_text())
    assert by_shape["protocol"]["crop"] == 32 and set(by_shape["per_class"]) <= set(SHAPE_SEG_CLASSES)
    cls = json.loads((out / "tiny-random" / "zs-cls" / "shapes-cls.json").read_text())
    assert cls["protocol"]["num_classes"] == 36 and cls["protocol"]["num_images"] == 360


def test_run_without_dataset_or_data_folder_runs_the_generated_sets(tmp_path, capsys):
    """`run --task T --model M` with no --dataset and no data folder: the ShapesWorld sets run,
    the real ones are named as skipped; a missing folder for a named dataset stays an error."""
    common = ["--model", "tiny-random", "--out", str(tmp_path / "r"), "--quiet", "--workers", "0"]
    missing = ["--data-root", str(tmp_path / "nowhere")]
    assert main(["run", "--task", "zs-cls", *common, *missing]) == 0
    err = capsys.readouterr().err
    assert "skipping cifar100, imagenet" in err and "shapes-cls.json" in err
    assert [p.name for p in (tmp_path / "r" / "tiny-random" / "zs-cls").iterdir()] == ["shapes-cls.json"]
    assert main(["run", "--task", "zs-cls", "--dataset", "cifar100", *common, *missing]) == 2
