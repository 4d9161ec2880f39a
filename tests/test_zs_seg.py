"""zs-seg end to end on generated MMSeg layouts: metrics, predictions, audit, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from silc_bench.cli import main
from silc_bench.segmentation.rules import ScoreRule
from tests import seg_fixtures

DATASETS = ["ade20k", "coco-stuff", "coco-object", "pc59", "pc60", "voc21", "voc20", "cityscapes"]


@pytest.fixture(scope="module")
def seg_root(tmp_path_factory) -> Path:
    return seg_fixtures.make_all(tmp_path_factory.mktemp("seg"))


def _tag(weights: Path) -> str:
    """The file-name tag of a run with `--weights` (results/key.py weights_tags)."""
    from silc_bench.core.hashing import file_sha256

    return f"+weights-{file_sha256(weights)[:8]}"


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
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
        "--device",
        "cpu",
        *extra,
    ]


# label file → metric label space, written independently of mmseg
GT = {
    "ade20k": ("ade/ADEChallengeData2016/annotations/validation", ".png", True),
    "coco-stuff": ("coco_stuff164k/annotations/val2017", "_labelTrainIds.png", False),
    "coco-object": ("coco_stuff164k/annotations/val2017", "_instanceTrainIds.png", False),
    "pc59": ("VOCdevkit/VOC2010/SegmentationClassContext", ".png", True),
    "pc60": ("VOCdevkit/VOC2010/SegmentationClassContext", ".png", False),
    "voc21": ("VOCdevkit/VOC2012/SegmentationClass", ".png", False),
    "voc20": ("VOCdevkit/VOC2012/SegmentationClass", ".png", True),
    "cityscapes": ("cityscapes/gtFine/val/frankfurt", "_gtFine_labelTrainIds.png", False),
}


def _numpy_iou(root: Path, dataset: str, pred_dir: Path, num_classes: int) -> tuple[float, dict[int, float]]:
    folder, suffix, reduce = GT[dataset]
    inter = np.zeros(num_classes)
    union = np.zeros(num_classes)
    preds = sorted(pred_dir.glob("*.png"))
    assert preds
    for p in preds:
        stem = p.stem.replace("_leftImg8bit", "")
        gt = np.array(Image.open(root / folder / f"{stem}{suffix}")).astype(np.int64)
        if reduce:
            gt = np.where(gt == 0, 255, gt - 1)
            gt[gt == 254] = 255
        pr = np.array(Image.open(p)).astype(np.int64)
        assert pr.shape == gt.shape and pr.max() < num_classes  # GT resolution, metric label space
        keep = gt != 255
        for c in range(num_classes):
            a, b = (pr == c) & keep, (gt == c) & keep
            inter[c] += (a & b).sum()
            union[c] += (a | b).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    per = {c: 100 * v for c, v in enumerate(iou) if np.isfinite(v)}
    return 100 * float(np.nanmean(iou)), per


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_layout_scores_like_numpy(dataset, trained_weights, seg_root, tmp_path, capsys):
    code = main(
        _args(
            seg_root,
            tmp_path,
            "--model",
            "open_clip:ViT-Tiny-P8",
            "--weights",
            str(trained_weights),
            "--dataset",
            dataset,
            "--protocol",
            "sclip",
            "--save-predictions",
        )
    )
    assert code == 0, capsys.readouterr().err
    res_path = tmp_path / "open_clip@ViT-Tiny-P8" / "zs-seg" / f"{dataset}@sclip{_tag(trained_weights)}.json"
    res = json.loads(res_path.read_text())
    n = res["protocol"]["num_classes"]
    pred_dir = res_path.with_suffix("") / "pred"
    miou, per = _numpy_iou(seg_root, dataset, pred_dir, n)
    assert res["metrics"]["mIoU"] == pytest.approx(round(miou, 2), abs=0.011)
    assert len(res["per_class"]) == len(per)
    for v_ours, v_ref in zip(res["per_class"].values(), per.values()):
        assert v_ours == pytest.approx(v_ref, abs=0.006)
    p = res["protocol"]
    assert p["refinement"] == "none" and p["label_access"] == "none" and p["profile"] == "sclip"
    assert p["dense_mode"] == "maskclip" and p["num_images"] == 3
    assert p["background"] == (dataset in ("voc21", "pc60", "coco-object"))


def test_default_profile_path_and_dense_mode_override(trained_weights, seg_root, tmp_path, capsys):
    base = _args(
        seg_root,
        tmp_path,
        "--model",
        "open_clip:ViT-Tiny-P8",
        "--weights",
        str(trained_weights),
        "--dataset",
        "voc20",
    )
    assert main(base) == 0, capsys.readouterr().err
    assert main([*base, "--dense-mode", "sclip"]) == 0, capsys.readouterr().err
    folder = tmp_path / "open_clip@ViT-Tiny-P8" / "zs-seg"
    w = _tag(trained_weights)
    assert sorted(p.name for p in folder.glob("*.json")) == [f"voc20+dense-sclip{w}.json", f"voc20{w}.json"]
    default = json.loads((folder / f"voc20{w}.json").read_text())
    assert default["profile"] == "tcl" and default["protocol"]["templates"] == "tcl"
    assert default["protocol"]["profile_version"] == 3
    assert default["protocol"]["crop"] == 448
    dense = json.loads((folder / f"voc20+dense-sclip{w}.json").read_text())
    assert dense["protocol"]["dense_mode"] == "sclip"


def _fails(args, capsys, *needles):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_bad_segmentation_input(seg_root, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    _fails(
        _args(tmp_path, out, "--model", "tiny-random", "--dataset", "ade20k"),
        capsys,
        "ade/ADEChallengeData2016",
    )
    root = tmp_path / "root"
    shutil.copytree(seg_root, root)
    lab = root / "cityscapes/gtFine/val/frankfurt/frankfurt_000000_000001_gtFine_labelTrainIds.png"
    Image.fromarray(np.full((10, 10), 3, np.uint8)).save(lab)
    _fails(
        _args(root, out, "--model", "tiny-random", "--dataset", "cityscapes", "--protocol", "sclip"),
        capsys,
        "frankfurt_000000_000001_gtFine_labelTrainIds.png",
        "but its image is",
    )
    lab = root / "ade/ADEChallengeData2016/annotations/validation/ade20k_0001.png"
    arr = np.array(Image.open(lab))
    arr[5, 5] = 200  # 199 after reduce_zero_label: outside [0, 149]
    Image.fromarray(arr).save(lab)
    _fails(
        _args(root, out, "--model", "tiny-random", "--dataset", "ade20k", "--protocol", "sclip"),
        capsys,
        "ade20k_0001.png",
        "199",
    )
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(lab)  # labels fine again
    img = root / "ade/ADEChallengeData2016/images/validation/ade20k_0001.jpg"
    img.write_bytes(b"not a jpeg")  # mmcv's loader asserts; once a traceback from a worker
    for workers in ("0", "2"):
        _fails(
            _args(root, out, "--model", "tiny-random", "--dataset", "ade20k", "--workers", workers),
            capsys,
            "ade20k_0001.jpg",
            "cannot be read",
        )
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.png"))

    from silc_bench.core.paths import REPO_ROOT

    tasks = tmp_path / "tasks"
    shutil.copytree(REPO_ROOT / "tasks", tasks)
    text = (tasks / "zs-seg" / "voc20.yaml").read_text().replace("classes: voc20", "classes: voc21")
    (tasks / "zs-seg" / "voc20.yaml").write_text(text)
    monkeypatch.setenv("SILC_BENCH_TASKS", str(tasks))
    _fails(
        _args(seg_root, out, "--model", "tiny-random", "--dataset", "voc20"),
        capsys,
        "21 lines for 20 classes",
    )


def test_score_rules_by_hand():
    q = torch.tensor([[[0.2]], [[0.5]], [[0.4]], [[0.1]]])  # 4 queries at one pixel
    # classes: 0 ← q0; 1 ← q1, q2 (synonyms); 2 ← q3
    cos = ScoreRule("cosine", (0, 1, 1, 2), 3)
    assert cos.predict(q).item() == 1
    # background rule: softmax(10·q); class 1's best synonym has probability ≈ 0.696
    probs = (10 * q[:, 0, 0]).softmax(0)
    assert probs.max().item() == pytest.approx(0.6964, abs=1e-4)
    assert ScoreRule("cosine", (0, 1, 1, 2), 3, True, 10.0, prob_thd=0.7).predict(q).item() == 0
    assert ScoreRule("cosine", (0, 1, 1, 2), 3, True, 10.0, prob_thd=0.69).predict(q).item() == 1
    # sigmoid masks with a constant background channel: masks for classes 1..2 only
    m = torch.tensor([[[0.45]], [[0.3]]])
    assert ScoreRule("sigmoid", (0, 1), 3, background=True, bg_thresh=0.5).predict(m).item() == 0
    assert ScoreRule("sigmoid", (0, 1), 3, background=True, bg_thresh=0.4).predict(m).item() == 1
    # background by threshold only: queries score classes 1..2 (synonyms q0, q1 → 1; q2 → 2)
    t = torch.tensor([[[0.5, 0.1]], [[0.3, 0.1]], [[0.1, 0.12]]])  # 3 queries at 2 pixels
    p = (10 * t).softmax(0)
    top = torch.stack([p[:2].amax(0), p[2]]).amax(0)[0]  # ≈ 0.82 and ≈ 0.34
    rule = ScoreRule("cosine", (0, 0, 1), 3, True, 10.0, prob_thd=0.5, background_query=False)
    assert rule.predict(t).tolist() == [[1, 0]] and top[0] > 0.5 > top[1]
    low = ScoreRule("cosine", (0, 0, 1), 3, True, 10.0, prob_thd=0.3, background_query=False)
    assert low.predict(t).tolist() == [[1, 2]]


def test_area_threshold_drops_small_classes():
    # 10 pixels: class 1 wins 9, class 2 wins 1 → class 2 has 10% of the foreground, not > 10%
    logits = torch.zeros(3, 1, 10)
    logits[1, 0, :9] = 1.0
    logits[2, 0, 9] = 1.0
    rule = ScoreRule("cosine", (0, 1, 2), 3, background=True, logit_scale=10.0, prob_thd=0.0, area_thd=0.1)
    pred = rule.predict(logits)
    assert pred[0, 9].item() != 2 and (pred[0, :9] == 1).all()


def test_oom_falls_back_to_smaller_window_batches():
    from silc_bench.segmentation.rules import ScoreRule as SR
    from silc_bench.segmentation.segmentor import ZeroShotSegmentor

    def encode(w):
        if len(w) > 2:
            raise torch.OutOfMemoryError("simulated")
        return torch.ones(len(w), 2, w.shape[2], w.shape[3])

    seg = ZeroShotSegmentor(encode, SR("cosine", (0, 1), 2), 2, 16, 8, [0, 0, 0], [1, 1, 1], window_batch=8)
    out = seg._slide(torch.zeros(1, 3, 40, 40))
    assert out.shape == (1, 2, 40, 40) and seg.window_batch == 2 and seg.oom_fallbacks == 2


def test_image_batches_give_the_same_numbers(trained_weights, seg_root, tmp_path, monkeypatch, capsys):
    """Same-size images share window forwards; mixed sizes are split into groups. Neither
    changes a number."""
    from silc_bench.core.paths import REPO_ROOT

    tasks = tmp_path / "tasks"
    shutil.copytree(REPO_ROOT / "tasks", tasks)
    for name in ("voc20", "shapes-seg"):
        with open(tasks / "zs-seg" / f"{name}-batched.yaml", "w") as f:
            f.write(f"include: {name}\nprotocol: {{image_batch: 3, window_batch: 5}}\n")
        with open(tasks / "zs-seg" / f"{name}-single.yaml", "w") as f:
            f.write(f"include: {name}\nprotocol: {{image_batch: 1, window_batch: 1}}\n")
    monkeypatch.setenv("SILC_BENCH_TASKS", str(tasks))
    model = ["--model", "open_clip:ViT-Tiny-P8", "--weights", str(trained_weights), "--protocol", "sclip"]
    for name, extra in (("voc20", []), ("shapes-seg", ["--limit", "6"])):
        for ds in (f"{name}-single", f"{name}-batched"):
            assert main(_args(seg_root, tmp_path / "r", *model, "--dataset", ds, *extra)) == 0, (
                capsys.readouterr()
            )
        folder = tmp_path / "r" / "open_clip@ViT-Tiny-P8" / "zs-seg"
        tag = "+limit-6" if extra else ""
        tag += _tag(trained_weights)
        one = json.loads((folder / f"{name}-single@sclip{tag}.json").read_text())
        many = json.loads((folder / f"{name}-batched@sclip{tag}.json").read_text())
        assert many["protocol"]["image_batch_used"] == 3 and one["protocol"]["image_batch_used"] == 1
        assert many["metrics"] == one["metrics"] and many["per_class"] == one["per_class"]


def test_the_sclip_profile_keeps_the_checkpoints_own_normalisation(tmp_path, monkeypatch):
    """SCLIP's mean/std constant is OpenAI CLIP's own: a mean = std = 0.5 checkpoint (SigLIP,
    big_vision) must be fed its own normalisation under `--protocol sclip`, not CLIP's."""
    import yaml

    entry = {
        "arch": {"open_clip": "ShapesTiny-P8"},
        "weights": {"path": "package:weights/clip-tiny.safetensors"},
        "preprocess": {"size": 64, "resize": "shortest", "interpolation": "bicubic",
                       "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "tokenizer": {"type": "open_clip", "context_length": 40},
    }  # fmt: skip
    reg = tmp_path / "half.yaml"
    reg.write_text(yaml.safe_dump({"models": {"half-norm": entry}}))
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    out = tmp_path / "o"
    args = ["run", "--task", "zs-seg", "--model", "half-norm", "--dataset", "shapes-seg",
            "--protocol", "sclip", "--limit", "1", "--out", str(out), "--device", "cpu", "--quiet",
            "--workers", "0"]  # fmt: skip
    assert main(args) == 0
    (path,) = out.rglob("*.json")
    protocol = json.loads(path.read_text())["protocol"]
    assert protocol["mean_255"] == [127.5] * 3 and protocol["std_255"] == [127.5] * 3
    assert protocol["normalisation_source"] == "checkpoint"


@pytest.mark.parametrize("profile, origin", [("tcl", "silc-bench"), ("sclip", "sclip")])
def test_the_background_rule_records_whose_rule_it_is(profile, origin, tmp_path):
    out = tmp_path / "o"
    args = ["run", "--task", "zs-seg", "--model", "clip-tiny", "--dataset", "shapes-seg",
            "--protocol", profile, "--limit", "1", "--out", str(out), "--device", "cpu", "--quiet",
            "--workers", "0"]  # fmt: skip
    assert main(args) == 0
    (path,) = out.rglob("*.json")
    assert json.loads(path.read_text())["protocol"]["background_rule_origin"] == origin


@pytest.mark.parametrize("which", ["img_path", "seg_map_path"])
def test_a_file_edited_and_restored_while_it_is_read_gives_no_result(
    which, seg_root, tmp_path, monkeypatch, capsys
):
    """Another process rewrites the last image (or label map) once the first is read and puts
    it back once it has been read: the fingerprint matches again at the end, but the bytes
    decoded were not the ones it hashed. Exit 2, one line, no result, no predictions."""
    from silc_bench.segmentation import build

    root = tmp_path / "root"
    shutil.copytree(seg_root, root)
    real = build._Readable.__getitem__

    def edited_mid_run(self, i):  # noqa: ANN001, ANN202
        last = len(self) - 1
        victim = edited_mid_run.victim = Path(self.ds.get_data_info(last)[which])
        out = real(self, i)
        if i == 0:
            edited_mid_run.original = victim.read_bytes()
            arr = np.array(Image.open(victim))
            Image.fromarray(np.zeros_like(arr)).save(victim, format=Image.open(victim).format)
        if i == last:
            victim.write_bytes(edited_mid_run.original)  # put back
        return out

    monkeypatch.setattr(build._Readable, "__getitem__", edited_mid_run)
    out = tmp_path / "out"
    args = _args(root, out, "--model", "tiny-random", "--dataset", "voc21", "--protocol", "sclip")
    code, err = main([*args, "--save-predictions"]), capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{edited_mid_run.victim} changed while it was being read" in err and "no result written" in err
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.png"))
    monkeypatch.setattr(build._Readable, "__getitem__", real)
    assert main(args) == 0, capsys.readouterr().err  # not reused: scored afresh, the normal number
    assert main(_args(seg_root, tmp_path / "clean", "--model", "tiny-random", "--dataset", "voc21",
                      "--protocol", "sclip")) == 0  # fmt: skip
    got = json.loads(next(out.rglob("voc21*.json")).read_text())["metrics"]
    assert got == json.loads(next((tmp_path / "clean").rglob("voc21*.json")).read_text())["metrics"]
