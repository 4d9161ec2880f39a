"""`--dataset wds:PATH`: CLIP_benchmark's WebDataset layout read as it is, equal to
CLIP_benchmark's own `build_wds_dataset` + `evaluate` on shards written by webdataset's
TarWriter (to 1e-4 points, as the folder parity tests)."""

from __future__ import annotations

import hashlib
import io
import sys
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


@pytest.mark.parametrize("names", ["as-written", "blank-line"])
def test_zero_shot_classification_on_shards_matches_clip_benchmark(
    trained_model, wds_cls, tmp_path, monkeypatch, names
):
    """Also with a blank line among the class names: CLIP_benchmark keeps it as a class (a
    class is its line number); dropping it once shifted every later class (100.0 vs 25.0)."""
    monkeypatch.setattr(zsc, "accuracy", _accuracy_numpy2)
    if names == "blank-line":
        import shutil

        shutil.copytree(wds_cls, tmp_path / "blank")
        wds_cls = tmp_path / "blank"
        listed = (wds_cls / "classnames.txt").read_text().splitlines()
        (wds_cls / "classnames.txt").write_text("\n".join([*listed[:2], "", *listed[2:]]) + "\n")
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
    assert names != "as-written" or 20.0 < ours.metrics["top1"] < 100.0  # a meaningful comparison
    assert ours.protocol["num_classes"] == len(ds.classes)


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
     ("duplicate", "two 'cls' members"), ("no-c", "needs '{c}'"), ("empty-templates", None),
     ("blank-template", "line 2 is blank")],
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
    elif damage == "blank-template":  # CLIP_benchmark would prompt every class with ''
        (bad / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n\nitap of a {c}.\n")
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


@pytest.fixture
def hub(wds_cls, tmp_path, monkeypatch):  # noqa: ANN201
    """A Hub stand-in on 127.0.0.1 serving the shapes shards as `clip-benchmark/wds_tiny`, the
    .txt files as regular git files (ETag: git blob sha1), the shards as LFS (sha256)."""
    import huggingface_hub.utils  # noqa: F401 - its tqdm module, patched below

    from tests.hub_server import Hub

    with Hub() as h:
        for f in sorted(wds_cls.rglob("*")):
            if f.is_file():
                name = f.relative_to(wds_cls).as_posix()
                h.add("clip-benchmark/wds_tiny", name, f.read_bytes(), "d" * 40)
                if name.endswith(".txt"):
                    h.plain.add(name)
        for var in ("HF_HUB_OFFLINE", "SILC_BENCH_OFFLINE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        # snapshot_download's "Fetching N files" bar reads the variable once, at import
        monkeypatch.setattr(sys.modules["huggingface_hub.utils.tqdm"], "HF_HUB_DISABLE_PROGRESS_BARS", True)
        yield h


def _cli(dataset: str, out: Path, *extra: str) -> int:
    from silc_bench.cli import main
    from tests.fixtures import run_args

    return main(run_args("zs-cls", "tiny-random", dataset, out, out.parent, *extra))


def test_a_hub_dataset_repository_is_fetched_one_split_at_a_time(
    trained_model, wds_cls, hub, tmp_path, monkeypatch
):
    """`wds:ORG/NAME` through the real huggingface_hub client, from a Hub stand-in on
    127.0.0.1: the split the task reads and the .txt files only; offline, the cache."""
    from silc_bench.core.errors import UserError

    remote = evaluate(trained_model, "zs-cls", "wds:clip-benchmark/wds_tiny", _opts(tmp_path / "a", tmp_path))
    assert not any(name.startswith("train/") for name in hub.gets)  # zs-cls reads test only
    assert hub.gets["test/0.tar"] == 1
    local = evaluate(trained_model, "zs-cls", f"wds:{wds_cls}", _opts(tmp_path / "b", tmp_path))
    assert remote.result.metrics == local.result.metrics
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cold"))
    with pytest.raises(UserError, match="wds:clip-benchmark/wds_tiny"):
        evaluate(trained_model, "zs-cls", "wds:clip-benchmark/wds_tiny", _opts(tmp_path / "c", tmp_path))


@pytest.mark.parametrize("bad", ["test/0.tar", "classnames.txt"])  # an LFS shard (sha256), a git file (sha1)
def test_hub_bytes_that_do_not_match_their_etag_are_refused_and_not_kept(bad, hub, tmp_path, capsys):
    hub.corrupt.add(bad)
    assert _cli("wds:clip-benchmark/wds_tiny", tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "do not match their ETag" in err and bad in err, err
    assert not (tmp_path / "a").exists()
    blobs = [b for b in (tmp_path / "hub").rglob("blobs/*") if b.is_file()]
    assert all(hashlib.sha256(b.read_bytes()).hexdigest() == b.name or _git_sha1(b) == b.name for b in blobs)
    assert _cli("wds:clip-benchmark/wds_tiny", tmp_path / "b", "--offline") == 2  # nothing kept as good
    assert not (tmp_path / "b").exists()
    hub.corrupt.clear()
    assert _cli("wds:clip-benchmark/wds_tiny", tmp_path / "c") == 0, capsys.readouterr().err
    assert hub.gets[bad] == 2  # downloaded afresh


def _git_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@pytest.mark.parametrize("offline", [False, True])
def test_a_typo_of_a_known_hub_name_is_a_did_you_mean_before_any_download(offline, hub, tmp_path, capsys):
    extra = ("--offline",) if offline else ()
    assert _cli("wds:clip-benchmark/wds_cifr100", tmp_path / "a", *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean wds:clip-benchmark/wds_vtab-cifar100?" in err, err
    assert sum(hub.gets.values()) == 0 and not (tmp_path / "hub").exists()


def test_a_close_name_the_hub_has_is_fetched_not_refused(wds_cls, hub, tmp_path, capsys):
    """The Hub holds more sets than CLIP_benchmark lists: a close name is asked about."""
    for (_, name), data in list(hub.files.items()):
        hub.add("clip-benchmark/wds_cifar100", name, data, "e" * 40)
    assert _cli("wds:clip-benchmark/wds_cifar100", tmp_path / "a") == 0, capsys.readouterr().err
    assert hub.gets["test/0.tar"] == 1


def test_list_datasets_names_clip_benchmarks_hub_sets(capsys):
    from silc_bench.cli import main
    from silc_bench.data.wds_hub import known

    assert len(known()) == 41 and known()["wds_mscoco_captions"] == "retrieval"
    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    assert "wds:clip-benchmark/wds_<name>" in out and "wds:ORG/NAME" in out
    for name in ("cars", "imagenet1k", "cifar100", "mscoco_captions", "flickr30k", "vtab-{caltech101"):
        assert name in out, name


def test_one_run_reads_each_shard_once(trained_model, wds_cls, tmp_path, monkeypatch):
    """prepare() and the run both read the split: the shard is hashed once (the memo), its
    headers indexed once (kept by its sha256), and no `cls` member is opened on its own."""
    import shutil

    from silc_bench.core import hashing
    from silc_bench.data import wds as reader

    fresh = tmp_path / "fresh"
    shutil.copytree(wds_cls, fresh)  # new files: nothing memoised for them yet
    for shard in (fresh / "test").glob("*.tar"):
        with open(shard, "ab") as f:
            f.write(b"\0" * 512)  # other bytes: a sha256 this process has not indexed
    hashed, indexed, opened = [], [], []
    real_hash, real_index, real_read = hashing._hash_bytes, reader._index, reader.Member.read_bytes
    monkeypatch.setattr(hashing, "_hash_bytes", lambda p: hashed.append(Path(p).name) or real_hash(p))
    monkeypatch.setattr(reader, "_index", lambda p: indexed.append(p.name) or real_index(p))
    monkeypatch.setattr(reader.Member, "read_bytes",
                        lambda m: (m.data is None and opened.append(m.name)) or real_read(m))  # fmt: skip
    res = evaluate(trained_model, "zs-cls", f"wds:{fresh}", _opts(tmp_path / "o", tmp_path)).result
    shards = sorted(p.name for p in (fresh / "test").glob("*.tar"))
    assert sorted(n for n in hashed if n.endswith(".tar")) == shards
    assert sorted(indexed) == shards
    assert len(opened) == res.protocol["num_images"] and not [n for n in opened if not n.endswith(".png")]


def test_a_shard_rewritten_mid_run_is_never_cached(wds_cls, tmp_path, monkeypatch, capsys):
    """The loader checks each image's bytes against the sha256 the index took: a shard
    rewritten while the run read it (even restored since) once put the mixed features in the
    cache under the original fingerprint (21.33 served later instead of 100.00)."""
    from silc_bench.cli import main
    from silc_bench.data import wds as ours

    real, calls = ours.Member.read_bytes, []

    def rewritten(self):  # noqa: ANN001, ANN202
        data = real(self)
        if not self.name.endswith(".png"):
            return data
        calls.append(self)
        return _tiny() if len(calls) == 2 else data  # the second image read: other bytes

    monkeypatch.setattr(ours.Member, "read_bytes", rewritten)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SILC_BENCH_CACHE", str(cache))
    args = ["run", "--task", "zs-cls", "--model", "tiny-random", "--dataset", f"wds:{wds_cls}", "--out",
            str(tmp_path / "o"), "--device", "cpu", "--quiet", "--workers", "0"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "changed while it was being read" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists() and not list(cache.rglob("image/*.safetensors"))
