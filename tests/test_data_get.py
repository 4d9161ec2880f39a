"""`silc-bench data get` / `data check` end to end, on tiny archives in the official formats
served from 127.0.0.1 (tests/data_sources.py), each pinned by its sha256 here.

The built-in catalogue is used as it ships, except through the two documented overrides:
`SILC_BENCH_DATA_MIRROR` (the loopback server) and `SILC_BENCH_DATA_SOURCES` (a copy of the
built-in YAML whose checksums are these archives' sha256s and whose split sizes are theirs).
No test reaches beyond loopback.
"""

from __future__ import annotations

import ast
import errno
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from silc_bench.cli import main
from silc_bench.data.get import archive, catalogue, convert_coco, convert_context, space
from tests import data_sources as ds
from tests.fixtures import run_args

MIM = Path(__import__("mmseg").__file__).parent / ".mim" / "tools" / "dataset_converters"


@pytest.fixture(scope="module")
def srv():
    with ds.Server() as s:
        yield s


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve(srv, tmp_path, monkeypatch, source, files, checks=None, pin=True) -> Path:  # noqa: ANN001
    """Serve `files` under a prefix of this test's own; pin their sha256s (or, pin=False, none,
    as for an archive with no published checksum) and the fixture's split sizes (`checks`
    entries update the built-in checks in order). Returns the data root."""
    prefix = f"/{tmp_path.name}"
    for name, data in files.items():
        srv.files[f"{prefix}/{name}"] = data
    raw = yaml.safe_load((catalogue.BUILTIN / f"{source}.yaml").read_text())
    for a in raw["archives"]:
        for algo in catalogue.ALGORITHMS:
            a.pop(algo, None)
        if a["file"] in files:
            a["url"] = a.get("url") or f"https://example.invalid/{a['file']}"
            a.pop("manual", None)
        if pin and a["file"] in files:
            a["sha256"] = (
                pin[a["file"]] if isinstance(pin, dict) and a["file"] in pin else sha(files[a["file"]])
            )
            a["checksum_source"] = "this test"
    for check, update in zip(raw.get("checks", []), checks or []):
        check.update(update)
    overlay = tmp_path / "sources"
    overlay.mkdir(exist_ok=True)
    (overlay / f"{source}.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SILC_BENCH_DATA_SOURCES", str(overlay))
    monkeypatch.setenv("SILC_BENCH_DATA_MIRROR", srv.url + prefix)
    return tmp_path / "data"


def data(action: str, name: str, root: Path, capsys, *extra: str) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(["data", action, name, "--data-root", str(root), "--quiet", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def assert_nothing_prepared(root: Path, target: str) -> None:
    assert not (root / target).exists()
    assert not list(root.rglob("*.partial.*")), list(root.rglob("*.partial.*"))


# --- the happy paths: get, then run -------------------------------------------------------


def test_cifar100_get_then_zs_cls_run(srv, tmp_path, monkeypatch, capsys):
    tgz = ds.cifar100()
    root = serve(srv, tmp_path, monkeypatch, "cifar100", {"cifar-100-python.tar.gz": tgz},
                 checks=[{"train": 100, "test": 100}])  # fmt: skip
    code, out, err = data("get", "cifar100", root, capsys)
    assert code == 0, err
    assert "prepared" in out and "sha256 matches the one published by this test" in out
    marker = json.loads((root / "cifar-100-python" / ".silc-bench-source.json").read_text())
    assert marker["archives"][0]["sha256"] == sha(tgz)
    assert not (root / ".downloads").exists()  # archives are removed once prepared
    assert main(run_args("zs-cls", "clip-tiny", "cifar100", tmp_path / "r", root)) == 0
    assert (tmp_path / "r" / "clip-tiny" / "zs-cls" / "cifar100.json").is_file()
    capsys.readouterr()
    code, out, _ = data("get", "cifar100", root, capsys)
    assert code == 0 and "already prepared" in out
    code, out, _ = data("check", "cifar100", root, capsys)
    assert code == 0 and "is the published set" in out and sha(tgz) in out
    monkeypatch.delenv("SILC_BENCH_DATA_SOURCES")  # the published sizes are the default
    code, _, err = data("check", "cifar100", root, capsys)
    assert code == 1
    assert "test holds 100 images; the published split has 10000" in err and "how to fix" in err


def test_ade20k_get_then_zs_seg_run(srv, tmp_path, monkeypatch, capsys):
    zipped = ds.ade20k(n_val=2)
    root = serve(
        srv, tmp_path, monkeypatch, "ade20k", {"ADEChallengeData2016.zip": zipped}, checks=[{"count": 2}]
    )
    code, _, err = data("get", "ade20k", root, capsys)
    assert code == 0, err
    base = root / "ade" / "ADEChallengeData2016"
    assert sorted(p.name for p in (base / "images" / "validation").iterdir()) == [
        "ADE_val_00000001.jpg", "ADE_val_00000002.jpg"]  # fmt: skip
    assert not (base / "images" / "training").exists()  # only the split `run` scores is kept
    args = run_args("zs-seg", "clip-tiny", "ade20k", tmp_path / "r", root)
    assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "r" / "clip-tiny" / "zs-seg" / "ade20k.json").is_file()
    monkeypatch.delenv("SILC_BENCH_DATA_SOURCES")
    code, _, err = data("check", "ade20k", root, capsys)
    assert code == 1 and "holds 2 images of the split; the published split has 2000" in err


def test_voc2012_keeps_the_palette_indices(srv, tmp_path, monkeypatch, capsys):
    tar = ds.voc2012()
    root = serve(
        srv, tmp_path, monkeypatch, "voc2012", {"VOCtrainval_11-May-2012.tar": tar}, checks=[{"count": 2}]
    )
    code, _, err = data("get", "voc21", root, capsys)
    assert code == 0, err
    lab = np.asarray(Image.open(root / "VOCdevkit/VOC2012/SegmentationClass" / f"{ds.VOC_IDS[1]}.png"))
    assert set(np.unique(lab).tolist()) == {0, 2, 255}
    assert data("check", "voc20", root, capsys)[0] == 0


def test_coco_karpathy_get_and_check(srv, tmp_path, monkeypatch, capsys):
    images, captions = ds.coco_karpathy(n_test=2)
    files = {"val2014.zip": images, "caption_datasets.zip": captions}
    root = serve(srv, tmp_path, monkeypatch, "coco", files, checks=[{"count": 2, "captions": 11}])
    code, out, err = data("get", "coco", root, capsys)
    assert code == 0, err
    assert "2 images, 11 captions" in out
    assert (root / "coco" / "dataset_coco.json").is_file() and not (
        root / "coco" / "dataset_flickr30k.json"
    ).exists()
    monkeypatch.delenv("SILC_BENCH_DATA_SOURCES")
    code, _, err = data("check", "coco", root, capsys)
    assert code == 1 and "the published one has 5000 and 25010" in err


# --- conversions, against the published mappings --------------------------------------


def _literal(path: Path, name: str):  # noqa: ANN202
    """A module-level constant of a converter file, read without importing it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            value = node.value
            while isinstance(value, ast.Call):  # np.sort(np.array([...]))
                value = value.args[0]
            return ast.literal_eval(value)
    raise LookupError(name)


def test_coco_stuff_tables_equal_mmseg_and_groupvit():
    stuff, obj = convert_coco.stuff_lut(), convert_coco.object_lut()
    if (MIM / "coco_stuff164k.py").is_file():  # MMSegmentation's own converter, as installed
        mm = _literal(MIM / "coco_stuff164k.py", "clsID_to_trID")
        assert {k: int(stuff[k]) for k in mm} == mm
        assert all(stuff[k] == 255 for k in range(256) if k not in mm)
    # GroupViT's convert_coco_object.py: the 171-id table + 1, ids above 90 → 0, 255 → 0
    for k in convert_coco.kept_ids():
        assert obj[k] == (stuff[k] + 1 if k <= 90 else 0)
    assert obj[255] == 0 and stuff[255] == 255
    raw = np.array([[0, 10, 11, 12, 90, 91, 100, 181, 255]], np.uint8)
    train_ids, object_ids = convert_coco.convert_map(raw)
    assert train_ids.tolist() == [[0, 10, 255, 11, 255, 80, 89, 170, 255]]
    assert object_ids.tolist() == [[1, 11, 255, 12, 255, 0, 0, 0, 0]]


def test_coco_stuff_get_writes_both_label_layouts(srv, tmp_path, monkeypatch, capsys):
    raw = {
        ds.COCO_VAL2017[0]: ds.labels(20, 30, [0, 12, 255]),
        ds.COCO_VAL2017[1]: ds.labels(24, 30, [91, 181, 56]),
    }
    images, maps = ds.coco_stuff(raw)
    files = {"val2017.zip": images, "stuffthingmaps_trainval2017.zip": maps}
    root = serve(
        srv, tmp_path, monkeypatch, "coco-stuff", files, checks=[{"count": 2}, {"count": 2}], pin=False
    )
    code, out, err = data("get", "coco-object", root, capsys)
    assert code == 0, err
    assert f"sha256 {sha(images)} (no checksum is published; recorded" in out  # to compare machines
    ann = root / "coco_stuff164k" / "annotations" / "val2017"
    for stem, m in raw.items():
        train_ids, object_ids = convert_coco.convert_map(m)
        assert np.array_equal(np.asarray(Image.open(ann / f"{stem}_labelTrainIds.png")), train_ids)
        assert np.array_equal(np.asarray(Image.open(ann / f"{stem}_instanceTrainIds.png")), object_ids)
    assert not (root / "coco_stuff164k" / "annotations" / "train2017").exists()
    assert data("check", "coco-stuff", root, capsys)[0] == 0


def test_pascal_context_get_maps_459_ids_to_pc60(srv, tmp_path, monkeypatch, capsys):
    ids = [0, 2, 3, 9, 284, 458, 459]
    label459 = {c: np.array([ids, ids[::-1]], np.uint16).repeat(4, 0).repeat(3, 1) for c in ds.CONTEXT_IDS}
    voc, mats = ds.pascal_context(label459)
    files = {"VOCtrainval_03-May-2010.tar": voc, "trainval.tar.gz": mats}
    root = serve(srv, tmp_path, monkeypatch, "pascal-context", files, checks=[{"count": 2}])
    code, _, err = data("get", "pc59", root, capsys)
    assert code == 0, err
    base = root / "VOCdevkit" / "VOC2010"
    assert (base / "ImageSets/SegmentationContext/val.txt").read_text().split() == ds.CONTEXT_IDS[1:]
    assert not (base / ".work").exists()
    got = np.asarray(Image.open(base / "SegmentationClassContext" / f"{ds.CONTEXT_IDS[1]}.png"))
    # published mapping (59_labels.txt): 2 aeroplane → 1, 9 bag → 2, 284 person → 37, 458 wood → 59
    assert got[0, ::3].tolist() == [0, 1, 0, 2, 37, 59, 0]
    if (MIM / "pascal_context.py").is_file():  # MMSegmentation's `_class_to_index` on its own ids
        mapping = np.sort(np.array(_literal(MIM / "pascal_context.py", "_mapping")))
        assert np.array_equal(convert_context.convert_map(mapping), np.digitize(mapping, mapping, right=True))
    assert data("check", "pc60", root, capsys)[0] == 0


# --- bad archives and bad downloads: one line, exit 2, nothing `run` accepts -------------


def _cifar_files() -> dict[str, bytes]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(ds.cifar100()), mode="r:gz") as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def _tar_pairs(pairs: list[tuple[str, bytes]]) -> bytes:
    """A tar.gz whose members are `pairs` in order, repeated names included."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, blob in pairs:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


BAD = {
    "wrong checksum": (lambda: ds.cifar100(), "does not match the pinned"),
    "duplicate member": (lambda: _tar_pairs([*_cifar_files().items(), ("cifar-100-python/meta", b"x")]),
                         "'cifar-100-python/meta' more than once"),
    "file used as a folder": (
        lambda: _tar_pairs([*_cifar_files().items(), ("cifar-100-python/meta/x", b"x")]),
        "'cifar-100-python/meta/x' is inside 'cifar-100-python/meta', which is a file"),
    "folder used as a file": (
        lambda: _tar_pairs([("cifar-100-python/d/x", b"x"), *_cifar_files().items(),
                            ("cifar-100-python/d", b"x")]),
        "'cifar-100-python/d' is a file and a folder"),
    "truncated": (lambda: ds.cifar100()[:-3000], "truncated or corrupt"),
    "../ member": (lambda: ds.tar_bytes({**_cifar_files(), "cifar-100-python/../../evil.txt": b"x"}),
                   "outside the target"),
    "absolute member": (lambda: ds.tar_bytes({**_cifar_files(), "/tmp/silc-evil.txt": b"x"}),
                        "outside the target"),
    "symlink out": (lambda: ds.tar_bytes(_cifar_files(), links={"cifar-100-python/m": "../../../etc/passwd"}),
                    "outside the archive"),
}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(BAD))
def test_a_bad_archive_is_one_line_and_leaves_nothing(fault, srv, tmp_path, monkeypatch, capsys):
    make, needle = BAD[fault]
    tgz = make()
    pin = {"cifar-100-python.tar.gz": "0" * 64} if fault == "wrong checksum" else True
    root = serve(srv, tmp_path, monkeypatch, "cifar100", {"cifar-100-python.tar.gz": tgz},
                 checks=[{"train": 100, "test": 100}], pin=pin)  # fmt: skip
    code, _, err = data("get", "cifar100", root, capsys)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("silc-bench: error:")
    assert_nothing_prepared(root, "cifar-100-python")
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/tmp/silc-evil.txt").exists()
    if fault == "wrong checksum":
        assert not list((root / ".downloads").iterdir())  # a wrong file is never resumed
    assert main(run_args("zs-cls", "clip-tiny", "cifar100", tmp_path / "r", root)) == 2


def test_a_zip_with_a_dotdot_member_is_refused(srv, tmp_path, monkeypatch, capsys):
    zipped = ds.zip_bytes(
        {"ADEChallengeData2016/images/validation/x.jpg": ds.jpg(8, 8, 0), "../outside.txt": b"x"}
    )
    root = serve(srv, tmp_path, monkeypatch, "ade20k", {"ADEChallengeData2016.zip": zipped})
    code, _, err = data("get", "ade20k", root, capsys)
    assert code == 2 and "outside the target" in err and len(err.strip().splitlines()) == 1
    assert_nothing_prepared(root, "ade/ADEChallengeData2016") and not (tmp_path / "outside.txt").exists()
    assert not (root / "ade").exists()  # the parent folder it made is removed too


ZIP_CLASHES = {
    "duplicate member": (["images/validation/x.jpg", "images/validation/x.jpg"], "more than once"),
    "file used as a folder": (["images/validation/x.jpg", "images/validation/x.jpg/y.jpg"],
                              "which is a file"),
    "folder used as a file": (["images/validation/d/y.jpg", "images/validation/d"], "a file and a folder"),
}  # fmt: skip


@pytest.mark.parametrize("clash", sorted(ZIP_CLASHES))
def test_a_zip_whose_members_clash_is_refused(clash, srv, tmp_path, monkeypatch, capsys):
    import io
    import warnings
    import zipfile

    names, needle = ZIP_CLASHES[clash]
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns on a duplicate name, and writes it
        for name in [*names, "annotations/validation/a.png"]:
            zf.writestr(f"ADEChallengeData2016/{name}", ds.jpg(8, 8, 0))
    root = serve(srv, tmp_path, monkeypatch, "ade20k", {"ADEChallengeData2016.zip": buf.getvalue()})
    code, _, err = data("get", "ade20k", root, capsys)
    assert code == 2 and needle in err and "not the published archive" in err, err
    assert len(err.strip().splitlines()) == 1
    assert_nothing_prepared(root, "ade/ADEChallengeData2016")


def test_a_download_cut_short_without_a_length_is_removed_not_reused(srv, tmp_path, monkeypatch, capsys):
    tgz = ds.cifar100()
    root = serve(srv, tmp_path, monkeypatch, "cifar100", {"cifar-100-python.tar.gz": tgz},
                 checks=[{"train": 100, "test": 100}], pin=False)  # fmt: skip
    path = f"/{tmp_path.name}/cifar-100-python.tar.gz"
    srv.no_length.add(path)
    code, _, err = data("get", "cifar100", root, capsys)
    assert code == 2 and "truncated or corrupt" in err and "removed" in err, err
    assert len(err.strip().splitlines()) == 1
    assert_nothing_prepared(root, "cifar-100-python")
    assert not list((root / ".downloads").glob("cifar-100-python.tar.gz*"))  # never reused
    srv.no_length.discard(path)
    code, _, err = data("get", "cifar100", root, capsys)
    assert code == 0, err


def _get_under_ulimit(root: Path, limit: int) -> subprocess.CompletedProcess:
    """`data get cifar100` in a process whose file size limit is `limit` bytes (`ulimit -f`),
    as the CLI runs it: no signal handling of the test's own (CPython ignores SIGXFSZ)."""
    import resource
    import sys

    probe = "import sys; from silc_bench.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", probe, "data", "get", "cifar100", "--data-root", str(root), "--quiet"],
        capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )  # fmt: skip


def test_a_file_size_limit_is_one_line(srv, tmp_path, monkeypatch):
    files = {**_cifar_files(), "cifar-100-python/zeros": bytes(3 << 20)}  # a big member that packs small
    tgz = ds.tar_bytes(files)
    assert len(tgz) < (1 << 20)
    root = serve(srv, tmp_path, monkeypatch, "cifar100", {"cifar-100-python.tar.gz": tgz},
                 checks=[{"train": 100, "test": 100}])  # fmt: skip
    proc = _get_under_ulimit(root, 256 << 10)  # the download hits it
    assert proc.returncode == 2, proc.stderr
    assert "file size limit (ulimit -f)" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    part = root / ".downloads" / "cifar-100-python.tar.gz.part"
    assert 0 < part.stat().st_size <= 256 << 10  # a true prefix: a run without the limit resumes it
    assert_nothing_prepared(root, "cifar-100-python")
    proc = _get_under_ulimit(root, 2 << 20)  # the download fits; the zeros member does not
    assert proc.returncode == 2, proc.stderr
    assert "file size limit (ulimit -f)" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "extracting" in proc.stderr
    assert (root / ".downloads" / "cifar-100-python.tar.gz").read_bytes() == tgz  # resumed, verified
    assert_nothing_prepared(root, "cifar-100-python")


def test_an_interrupted_download_resumes_with_a_range_request(srv, tmp_path, monkeypatch, capsys):
    tgz = ds.cifar100()
    root = serve(srv, tmp_path, monkeypatch, "cifar100", {"cifar-100-python.tar.gz": tgz},
                 checks=[{"train": 100, "test": 100}])  # fmt: skip
    path = f"/{tmp_path.name}/cifar-100-python.tar.gz"
    srv.drop_first.add(path)
    code, _, err = data("get", "cifar100", root, capsys)
    assert code == 0, err
    gets = [r for p, r in srv.log if p == path]
    assert gets[0] is None and gets[1] == f"bytes={len(tgz) // 2}-"


def test_a_download_cut_every_time_is_resumed_by_the_next_run(srv, tmp_path, monkeypatch, capsys):
    tgz = ds.cifar100()
    root = serve(srv, tmp_path, monkeypatch, "cifar100", {"cifar-100-python.tar.gz": tgz},
                 checks=[{"train": 100, "test": 100}])  # fmt: skip
    path = f"/{tmp_path.name}/cifar-100-python.tar.gz"
    srv.drop_always.add(path)
    code, _, err = data("get", "cifar100", root, capsys)
    assert code == 2 and "again to resume" in err and len(err.strip().splitlines()) == 1
    part = root / ".downloads" / "cifar-100-python.tar.gz.part"
    kept = part.stat().st_size
    assert 0 < kept < len(tgz)
    assert_nothing_prepared(root, "cifar-100-python")
    srv.drop_always.discard(path)
    code, _, err = data("get", "cifar100", root, capsys)
    assert code == 0, err
    assert [r for p, r in srv.log if p == path][-1] == f"bytes={kept}-"


def test_a_full_data_root_is_one_line(srv, tmp_path, monkeypatch, capsys):
    root = serve(srv, tmp_path, monkeypatch, "cifar100", {"cifar-100-python.tar.gz": ds.cifar100()},
                 checks=[{"train": 100, "test": 100}])  # fmt: skip
    monkeypatch.setattr(space, "free_bytes", lambda folder: 1000)
    code, _, err = data("get", "cifar100", root, capsys)
    assert code == 2 and "not enough space" in err and len(err.strip().splitlines()) == 1
    assert_nothing_prepared(root, "cifar-100-python")
    monkeypatch.undo()
    # the disk fills during extraction (after the space check passed): same rule
    root = serve(srv, tmp_path, monkeypatch, "cifar100", {"cifar-100-python.tar.gz": ds.cifar100()},
                 checks=[{"train": 100, "test": 100}])  # fmt: skip

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive, "_write", full)
    code, _, err = data("get", "cifar100", root, capsys)
    assert code == 2 and "no space left" in err and len(err.strip().splitlines()) == 1
    assert_nothing_prepared(root, "cifar-100-python")


# --- by hand, and the catalogue itself --------------------------------------------------


def test_a_dataset_behind_a_login_says_what_to_download_and_where(tmp_path, capsys):
    code, out, _ = data("get", "imagenet", tmp_path, capsys)
    assert code == 1
    assert (
        "ILSVRC2012_img_val.tar" in out
        and str(tmp_path / ".downloads") in out
        and "data check imagenet" in out
    )
    code, _, err = data("check", "cityscapes", tmp_path, capsys)
    assert code == 1 and "does not exist" in err and "leftImg8bit_trainvaltest.zip" in err


def test_imagenet_by_hand_is_verified_and_sorted_into_wnid_folders(tmp_path, monkeypatch, capsys):
    import io

    from scipy.io import savemat

    images = {f"ILSVRC2012_val_{i:08d}.JPEG": ds.jpg(16, 16, i) for i in range(1, 4)}
    synsets = np.array([(1, "n01440764", 0), (2, "n01443537", 0), (1001, "n00001740", 5)],
                       dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])  # fmt: skip
    buf = io.BytesIO()
    savemat(buf, {"synsets": synsets})
    devkit = ds.tar_bytes(
        {
            "ILSVRC2012_devkit_t12/data/meta.mat": buf.getvalue(),
            "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt": b"2\n1\n2\n",
        }
    )
    files = {"ILSVRC2012_img_val.tar": ds.tar_bytes(images, mode="w"), "ILSVRC2012_devkit_t12.tar.gz": devkit}
    raw = yaml.safe_load((catalogue.BUILTIN / "imagenet.yaml").read_text())
    for a in raw["archives"]:
        a.pop("md5")
        a["sha256"] = sha(files[a["file"]])
    raw["checks"][0].update(classes=2, count=3)
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "imagenet.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SILC_BENCH_DATA_SOURCES", str(tmp_path / "sources"))
    root = tmp_path / "data"
    (root / ".downloads").mkdir(parents=True)
    for name, blob in files.items():
        (root / ".downloads" / name).write_bytes(blob)
    code, _, err = data("get", "imagenet", root, capsys)
    assert code == 0, err
    val = root / "imagenet" / "val"
    two = ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000003.JPEG"]
    assert sorted(p.name for p in (val / "n01443537").iterdir()) == two
    assert [p.name for p in (val / "n01440764").iterdir()] == ["ILSVRC2012_val_00000002.JPEG"]


def test_the_catalogue_agrees_with_the_task_files():
    from silc_bench.config import list_datasets, list_tasks, load_task

    covered = set()
    for name in catalogue.names():
        src = catalogue.load(name)
        for used in src.uses:
            covered.add(used)
            tasks = [t for t in list_tasks() if used in list_datasets(t)]
            assert tasks, f"{name} serves {used}, which no task knows"
            standard = {load_task(t, used).standard_images for t in tasks} - {None}
            counts = {c["count"] for c in src.checks if "count" in c} or {c.get("test") for c in src.checks}
            assert standard <= counts, (name, used, standard, counts)
        for a in src.archives:
            assert a.url is None or a.url.startswith(("http://", "https://")), a
    real = {d for t in list_tasks() for d in list_datasets(t)
            if not d.startswith("shapes") and d not in ("imagefolder", "wds")}  # fmt: skip
    assert real <= covered, sorted(real - covered)
    assert catalogue.load("cifar100").archives[0].checksum == ("md5", "eb9058c3a382ffc7106e4002c42a8d85")


def test_data_commands_never_import_torch(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys; from silc_bench.cli import main; root = sys.argv[1]; "
        "codes = [main(['data', 'get', 'cifar1000']), "
        "main(['data', 'check', 'cifar100', '--data-root', root]), "
        "main(['data', 'get', 'imagenet', '--data-root', root])]; "
        "print(codes, [m for m in ('torch', 'mmseg', 'torchvision') if m in sys.modules])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip().splitlines()[-1] == "[2, 1, 1] []", proc.stdout + proc.stderr
