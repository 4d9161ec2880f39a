"""`--dataset wds:PATH`: CLIP_benchmark's WebDataset layout read as it is, equal to
CLIP_benchmark's own `build_wds_dataset` + `evaluate` on shards written by webdataset's
TarWriter (to 1e-4 points, as the folder parity tests)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from silc_bench.api import EvalOptions, evaluate
from silc_bench.config import load_task
from silc_bench.data.classification import read_classification
from silc_bench.data.retrieval import read_karpathy
from silc_bench.features.prompts import read_asset

wds = pytest.importorskip("webdataset")
builder = pytest.importorskip("clip_benchmark.datasets.builder")
zsc = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")
zsr = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")

from tests.test_parity import _accuracy_numpy2  # noqa: E402


def _png(img) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def _write(folder: Path, split: str, samples: list[dict], per_shard: int = 4) -> None:
    (folder / split).mkdir(parents=True)
    shards = [samples[i : i + per_shard] for i in range(0, len(samples), per_shard)]
    for n, chunk in enumerate(shards):
        with wds.TarWriter(str(folder / split / f"{n}.tar")) as sink:
            for s in chunk:
                sink.write(s)
    (folder / split / "nshards.txt").write_text(f"{len(shards)}\n")


@pytest.fixture(scope="module")
def wds_cls(data_root, tmp_path_factory) -> Path:
    """The shapes imagefolder fixture as CLIP_benchmark's exporter lays a dataset out."""
    data = read_classification(load_task("zs-cls", f"imagefolder:{data_root / 'shapes'}").data, data_root)
    out = tmp_path_factory.mktemp("wds") / "shapes"
    for role, split in (("eval", "test"), ("eval", "train")):
        s = data.splits[role]
        rows = [{"__key__": f"s{i:05d}", "png": _png(s.read(p)), "cls": int(y)}
                for i, (p, y) in enumerate(zip(s.items, s.labels))]  # fmt: skip
        _write(out, split, rows)
    (out / "classnames.txt").write_text("\n".join(data.classnames) + "\n")
    (out / "zeroshot_classification_templates.txt").write_text(
        "\n".join(read_asset("templates", "cifar")) + "\n"
    )
    (out / "dataset_type.txt").write_text("classification\n")
    return out


@pytest.fixture(scope="module")
def wds_ret(data_root, tmp_path_factory) -> Path:
    data = read_karpathy(load_task("retrieval", "coco").data, data_root)
    caps = [[] for _ in range(len(data.images))]
    for c, i in zip(data.captions, data.text_to_image):
        caps[i].append(c)
    out = tmp_path_factory.mktemp("wds") / "coco"
    rows = [{"__key__": f"s{i:05d}", "jpg": _png(data.images.read(p)), "txt": "\n".join(caps[i])}
            for i, p in enumerate(data.images.items)]  # fmt: skip
    _write(out, "test", rows, per_shard=3)
    (out / "dataset_type.txt").write_text("retrieval\n")
    return out


def _opts(tmp_path: Path, root: Path) -> EvalOptions:
    return EvalOptions(data_root=root, out=tmp_path, device="cpu", workers=0, progress=False, batch_size=7)


def test_zero_shot_classification_on_shards_matches_clip_benchmark(
    trained_model, wds_cls, tmp_path, monkeypatch
):
    monkeypatch.setattr(zsc, "accuracy", _accuracy_numpy2)
    ours = evaluate(trained_model, "zs-cls", f"wds:{wds_cls}", _opts(tmp_path, tmp_path)).result
    ds = builder.build_wds_dataset("wds_shapes", trained_model.preprocess.transform(), "test", str(wds_cls))
    loader = torch.utils.data.DataLoader(ds.batched(5), batch_size=None)
    ref = zsc.evaluate(trained_model.module, loader, trained_model.tokenizer, ds.classes, ds.templates, "cpu",
                       amp=False)  # fmt: skip
    assert ours.protocol["num_images"] > 10
    assert ours.metrics["top1"] == pytest.approx(100 * ref["acc1"], abs=1e-4)
    assert ours.metrics["top5"] == pytest.approx(100 * ref["acc5"], abs=1e-4)
    assert ours.metrics["mean_per_class_recall"] == pytest.approx(
        100 * ref["mean_per_class_recall"], abs=1e-4
    )
    assert 20.0 < ours.metrics["top1"] < 100.0  # a meaningful comparison


def test_retrieval_on_shards_matches_clip_benchmark(trained_model, wds_ret, tmp_path):
    ours = evaluate(trained_model, "retrieval", f"wds:{wds_ret}", _opts(tmp_path, tmp_path)).result
    ds = builder.build_wds_dataset("wds_coco", trained_model.preprocess.transform(), "test", str(wds_ret))
    loader = torch.utils.data.DataLoader(ds.batched(4, collation_fn=_collate), batch_size=None)
    ref = zsr.evaluate(trained_model.module, loader, trained_model.tokenizer, "cpu", amp=False,
                       recall_k_list=[1, 5, 10])  # fmt: skip
    for k in (1, 5, 10):  # CLIP_benchmark's names are swapped
        assert ours.metrics[f"t2i_recall@{k}"] == pytest.approx(
            100 * ref[f"image_retrieval_recall@{k}"], abs=1e-4
        )
        assert ours.metrics[f"i2t_recall@{k}"] == pytest.approx(
            100 * ref[f"text_retrieval_recall@{k}"], abs=1e-4
        )


def _collate(batch):  # noqa: ANN001, ANN202
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def test_few_shot_draws_from_train_and_scores_test(trained_model, wds_cls, tmp_path):
    res = evaluate(trained_model, "fs-cls", f"wds:{wds_cls}", _opts(tmp_path, tmp_path)).result
    assert res.protocol["num_images"] == len(read_classification(
        load_task("fs-cls", f"wds:{wds_cls}").data, tmp_path).splits["eval"])  # fmt: skip


@pytest.mark.parametrize(
    "damage, needle",
    [("nshards", "nshards.txt"), ("label", "labels run"), ("no-image", "no webp/png/jpg/jpeg image"),
     ("truncated", "truncated"), ("gzip", "compressed"), ("not-tar", "not a readable tar shard"),
     ("duplicate", "two 'cls' members"), ("no-c", "needs '{c}'"), ("empty-templates", None)],
)  # fmt: skip
def test_a_damaged_shard_folder_is_one_line(damage, needle, wds_cls, tmp_path, capsys):
    """Each of these once ran with exit 0 and another number (a shard cut at a member
    boundary lost samples; a duplicate label silently won; a template without {c} gave every
    class one prompt) or ended in a traceback (an empty templates file)."""
    import gzip
    import shutil
    import tarfile

    from silc_bench.cli import main

    bad = tmp_path / "bad"
    shutil.copytree(wds_cls, bad)
    if damage == "nshards":
        (bad / "test" / "nshards.txt").write_text("9\n")
    elif damage == "label":
        _write_over(
            bad, [{"__key__": "x", "png": (bad / "test" / "0.tar").read_bytes()[:0] or _tiny(), "cls": 999}]
        )
    elif damage == "no-image":
        _write_over(bad, [{"__key__": "x", "cls": 0}])
    elif damage == "truncated":  # cut at a member boundary: tarfile alone reads a shorter, valid tar
        shard = bad / "test" / "0.tar"
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
        shard.write_bytes(shard.read_bytes()[: members[2].offset])
    elif damage == "gzip":
        shard = bad / "test" / "0.tar"
        shard.write_bytes(gzip.compress(shard.read_bytes()))
    elif damage == "not-tar":
        (bad / "test" / "0.tar").write_bytes(b"<html>not found</html>" * 100)
    elif damage == "duplicate":
        shard = bad / "test" / "0.tar"
        with tarfile.open(shard, "w") as tar:
            for name, data in (("s0.png", _tiny()), ("s0.cls", b"0"), ("s0.cls", b"1")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    elif damage == "no-c":
        (bad / "zeroshot_classification_templates.txt").write_text("a photo of a thing.\n")
    else:  # an empty templates file: the dataset ships none, so the default ImageNet ones are used
        (bad / "zeroshot_classification_templates.txt").write_text("")
    args = ["run", "--task", "zs-cls", "--model", "tiny-random", "--dataset", f"wds:{bad}", "--out",
            str(tmp_path / "o"), "--device", "cpu", "--quiet", "--workers", "0"]  # fmt: skip
    if needle is None:
        assert main(args) == 0
        return
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and not (tmp_path / "o").exists()


def _tiny() -> bytes:
    from PIL import Image

    return _png(Image.new("RGB", (8, 8)))


def _write_over(folder: Path, rows: list[dict]) -> None:
    import shutil

    shutil.rmtree(folder / "test")
    _write(folder, "test", rows)


def test_a_hub_dataset_repository_is_fetched_one_split_at_a_time(
    trained_model, wds_cls, tmp_path, monkeypatch
):
    """`wds:ORG/NAME` through the real huggingface_hub client, from a Hub stand-in on
    127.0.0.1: the split the task reads and the .txt files only; offline, the cache."""
    from silc_bench.core.errors import UserError
    from tests.hub_server import Hub

    with Hub() as hub:
        for f in sorted(wds_cls.rglob("*")):
            if f.is_file():
                hub.add(
                    "clip-benchmark/wds_tiny", f.relative_to(wds_cls).as_posix(), f.read_bytes(), "d" * 40
                )
        for var in ("HF_HUB_OFFLINE", "SILC_BENCH_OFFLINE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        remote = evaluate(
            trained_model, "zs-cls", "wds:clip-benchmark/wds_tiny", _opts(tmp_path / "a", tmp_path)
        )
        assert not any(name.startswith("train/") for name in hub.gets)  # zs-cls reads test only
        assert hub.gets["test/0.tar"] == 1
        local = evaluate(trained_model, "zs-cls", f"wds:{wds_cls}", _opts(tmp_path / "b", tmp_path))
        assert remote.result.metrics == local.result.metrics
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cold"))
        with pytest.raises(UserError, match="wds:clip-benchmark/wds_tiny"):
            evaluate(trained_model, "zs-cls", "wds:clip-benchmark/wds_tiny", _opts(tmp_path / "c", tmp_path))
