"""Never a silent wrong number: the hostile cases of issue 8, each reproduced first.

Damaged or foreign cache entries, results reused on a partial match, stale dataset and
checkpoint hashes, 16-bit images, NaN in results, and class sets or image counts that
change without a word. Each test asserts the clean number comes back (or exit 2), and
that the user is told.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from silc_bench.cli import main
from silc_bench.core.hashing import file_sha256
from tests import fixtures

pytestmark = pytest.mark.usefixtures("one_thread")


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def zs(
    dataset: str, out: Path, *extra: str, model: str = "tiny-random", root: Path | None = None
) -> list[str]:
    return fixtures.run_args("zs-cls", model, dataset, out, root or out, *extra)


def metrics_of(out: Path) -> dict[str, float]:
    (path,) = [p for p in out.rglob("*.json") if not p.name.startswith(".")]
    return json.loads(path.read_text())["metrics"]


def result_of(out: Path) -> dict:
    (path,) = [p for p in out.rglob("*.json") if not p.name.startswith(".")]
    return json.loads(path.read_text())


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own, so entries can be found and damaged."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SILC_BENCH_CACHE", str(root))
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    return fixtures.imagefolder(tmp_path / "data" / "base", n_train=2, n_test=6, size=32)


def _model_file(path: Path, seed: int) -> Path:
    import open_clip

    from silc_bench.core.console import quiet_root_logger

    torch.manual_seed(seed)
    with quiet_root_logger():
        m = open_clip.create_model("ViT-Tiny-P8", pretrained=None)
    from safetensors.torch import save_file as save_torch

    path.parent.mkdir(parents=True, exist_ok=True)
    save_torch({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    return path


# ------------------------------------------------------------------ 1. the feature cache


def _image_entry(cache: Path) -> Path:
    (entry,) = list((cache / "features" / "image").rglob("*.safetensors"))
    return entry


def _rewrite(entry: Path, change) -> None:  # noqa: ANN001
    """Rewrite an entry's arrays, keeping its stored key and checksum (damaged bytes)."""
    with safe_open(str(entry), framework="numpy") as f:
        meta = f.metadata()
    arrays = change(load_file(str(entry)))
    save_file(arrays, str(entry), metadata=meta)


@pytest.mark.parametrize(
    "damage", ["sign-bits", "nan", "byte-flips", "foreign-entry", "truncated-rows", "empty"]
)
def test_damaged_cache_entry_is_recomputed(damage, trained_weights, folder, cache, tmp_path, capsys):
    model = ["--weights", str(trained_weights)]
    args = zs(f"imagefolder:{folder}", tmp_path / "o", *model, model="open_clip:ViT-Tiny-P8")
    assert cli(args, capsys)[0] == 0
    clean = metrics_of(tmp_path / "o")
    entry = _image_entry(cache)
    if damage == "sign-bits":
        _rewrite(entry, lambda a: {k: np.concatenate([-v[:3], v[3:]]) for k, v in a.items()})
    elif damage == "nan":
        _rewrite(
            entry,
            lambda a: {k: np.where(np.arange(v.size).reshape(v.shape) % 7, v, np.nan) for k, v in a.items()},
        )
    elif damage == "byte-flips":
        raw = bytearray(entry.read_bytes())
        rng = np.random.default_rng(0)
        for i in rng.integers(len(raw) // 2, len(raw), 300):
            raw[i] ^= 0xFF
        entry.write_bytes(bytes(raw))
    elif damage == "foreign-entry":
        (text,) = list((cache / "features" / "text").rglob("*.safetensors"))
        shutil.copy(text, entry)
    elif damage == "truncated-rows":
        from silc_bench.features.cache import arrays_checksum

        with safe_open(str(entry), framework="numpy") as f:
            meta = f.metadata()
        arrays = {k: v[:5] for k, v in load_file(str(entry)).items()}
        save_file(arrays, str(entry), metadata={**meta, "sha256": arrays_checksum(arrays)})
    else:
        entry.write_bytes(b"")
    code, _, err = cli([*args, "--force"], capsys)
    assert code == 0, err
    assert "failed verification" in err and "Traceback" not in err
    assert metrics_of(tmp_path / "o") == clean
    assert any("failed verification" in n for n in result_of(tmp_path / "o")["notes"])
    code, _, err = cli([*args, "--force"], capsys)  # healed: the recomputed entry is served
    assert code == 0 and "failed verification" not in err
    assert metrics_of(tmp_path / "o") == clean
    assert result_of(tmp_path / "o")["env"]["cache"]["hits"] == 2


def test_cache_entries_follow_the_umask(folder, cache, tmp_path, capsys):
    old = os.umask(0o002)
    try:
        assert cli(zs(f"imagefolder:{folder}", tmp_path / "o"), capsys)[0] == 0
    finally:
        os.umask(old)
    assert (_image_entry(cache).stat().st_mode & 0o777) == 0o664


def test_unwritable_cache_warns_once_and_still_measures(folder, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("SILC_BENCH_CACHE", str(blocker / "cache"))
    code, _, err = cli(zs(f"imagefolder:{folder}", tmp_path / "o"), capsys)
    assert code == 0, err
    assert err.count("warning") == 1 and "not writable" in err
    assert metrics_of(tmp_path / "o")["top1"] >= 0


# ------------------------------------------------------------------ 2. result reuse


def test_result_reused_only_on_a_full_key_match(folder, cache, tmp_path, capsys):
    a, b = _model_file(tmp_path / "a" / "w.safetensors", 1), _model_file(tmp_path / "b" / "w.safetensors", 2)
    out, ds = tmp_path / "o", f"imagefolder:{folder}"

    def run(*extra: str, weights: Path = a, where: Path = out) -> tuple[int, str]:
        code, _, err = cli(
            zs(ds, where, "--weights", str(weights), *extra, model="open_clip:ViT-Tiny-P8"), capsys
        )
        return code, err

    def truth(*extra: str, weights: Path = a) -> dict:
        where = tmp_path / f"truth{len(list(tmp_path.glob('truth*')))}"
        assert run(*extra, "--no-cache", weights=weights, where=where)[0] == 0
        return metrics_of(where)

    assert run()[0] == 0
    assert run()[1].count("skipped") == 1  # same key: reused
    code, err = run(weights=b)  # other weights: never the first file's number, a file of their own
    assert code == 0 and "skipped" not in err and "replacing" not in err
    b_file = next(out.rglob(f"*+weights-{file_sha256(b)[:8]}.json"))
    assert json.loads(b_file.read_text())["metrics"] == truth(weights=b)
    for p in out.rglob(f"*+weights-{file_sha256(a)[:8]}.json"):
        p.unlink()  # from here on, b's results only
    code, err = run("--precision", "bf16", weights=b)  # a file of its own, beside the fp32 one
    assert code == 0 and "replacing" not in err
    (other,) = out.rglob("*+bf16+*.json")
    assert json.loads(other.read_text())["precision"] == "bf16"
    other.unlink()
    code, err = run(weights=b)
    assert "skipped" in err and metrics_of(out) == truth(weights=b)
    code, err = run("--limit", "3", weights=b)  # a smoke run gets a file of its own
    assert code == 0 and "replacing" not in err
    (smoke,) = out.rglob("*+limit-3+*.json")
    assert json.loads(smoke.read_text())["protocol"]["num_images"] == 3
    smoke.unlink()
    code, err = run(weights=b)
    assert "skipped" in err and result_of(out)["protocol"]["num_images"] == 30


def test_two_imagefolders_of_one_name_never_share_a_result(tmp_path, cache, capsys):
    a = fixtures.imagefolder(tmp_path / "a" / "base", n_train=1, n_test=2, size=32, seed=0)
    b = fixtures.imagefolder(tmp_path / "b" / "base", n_train=1, n_test=3, size=32, seed=1)
    out = tmp_path / "o"
    for d in (a, b):
        assert cli(zs(f"imagefolder:{d}", out), capsys)[0] == 0
    files = sorted(out.rglob("*.json"))
    assert len(files) == 2
    assert sorted(json.loads(f.read_text())["protocol"]["num_images"] for f in files) == [10, 15]


def test_stored_key_from_an_older_schema_is_replaced_with_a_reason(folder, cache, tmp_path, capsys):
    out = tmp_path / "o"
    assert cli(zs(f"imagefolder:{folder}", out), capsys)[0] == 0
    (path,) = out.rglob("*.json")
    d = json.loads(path.read_text())
    d.pop("run_key")
    d["schema_version"] = 1
    d["metrics"]["top1"] = 99.0
    path.write_text(json.dumps(d))
    code, _, err = cli(zs(f"imagefolder:{folder}", out), capsys)
    assert code == 0 and "no run key" in err
    assert metrics_of(out)["top1"] != 99.0


# ------------------------------------------------------------------ 3. the dataset fingerprint


def test_edit_past_the_header_at_the_same_size_is_seen(tmp_path, cache, capsys):
    base = fixtures.imagefolder(tmp_path / "bmp", n_train=1, n_test=3, size=48)
    for p in list(base.rglob("*.png")):
        Image.open(p).save(p.with_suffix(".bmp"))
        p.unlink()
    out, ds = tmp_path / "o", f"imagefolder:{base}"
    assert cli(zs(ds, out), capsys)[0] == 0
    first = result_of(out)["dataset_fingerprint"]
    victim = sorted(base.rglob("*.bmp"))[0]
    st = victim.stat()
    raw = bytearray(victim.read_bytes())
    raw[-3000:] = bytes(255 - x for x in raw[-3000:])  # pixels past the first 4 KiB
    victim.write_bytes(bytes(raw))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    assert victim.stat().st_size == st.st_size
    code, _, err = cli(zs(ds, out), capsys)
    assert code == 0 and "dataset_fingerprint" in err
    assert result_of(out)["dataset_fingerprint"] != first
    fresh = tmp_path / "fresh"
    assert cli(zs(ds, fresh, "--no-cache"), capsys)[0] == 0
    assert metrics_of(out) == metrics_of(fresh)


def test_verify_data_ignores_a_poisoned_memo(folder, cache, tmp_path, capsys):
    out, ds = tmp_path / "o", f"imagefolder:{folder}"
    assert cli(zs(ds, out), capsys)[0] == 0
    true_fp = result_of(out)["dataset_fingerprint"]
    with sqlite3.connect(cache / "content-sha256.sqlite") as db:
        db.execute("UPDATE memo SET sha = ?", ("0" * 64,))
    assert cli(zs(ds, out, "--verify-data", "--force"), capsys)[0] == 0
    assert result_of(out)["dataset_fingerprint"] == true_fp


# ------------------------------------------------------------------ 4. checkpoints swapped in place


def _swap_in_place(src: Path, dst: Path) -> None:
    st = dst.stat()
    shutil.copyfile(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert dst.stat().st_size == st.st_size and dst.stat().st_mtime_ns == st.st_mtime_ns


def test_checkpoint_swapped_in_place(folder, cache, tmp_path, monkeypatch, capsys):
    import hashlib

    a = _model_file(tmp_path / "w" / "a.safetensors", 1)
    b = _model_file(tmp_path / "w" / "b.safetensors", 2)
    live = tmp_path / "w" / "live.safetensors"
    shutil.copy2(a, live)
    sha = hashlib.sha256(a.read_bytes()).hexdigest()
    reg = tmp_path / "extra.yaml"
    reg.write_text(
        "models:\n  swap-me:\n    arch: {open_clip: ViT-Tiny-P8}\n"
        f"    weights: {{path: {live}, sha256: {sha}}}\n"
    )
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    out, ds = tmp_path / "o", f"imagefolder:{folder}"
    assert cli(zs(ds, out, model="swap-me"), capsys)[0] == 0
    _swap_in_place(b, live)
    code, _, err = cli(zs(ds, out, model="swap-me"), capsys)
    assert code == 2 and "sha256 mismatch" in err and err.count("\n") == 1
    # --weights has no registry sha256: the swapped file is re-hashed, and its number is the
    # new bytes' own (a file named by them), never the old result reused
    shutil.copy2(a, live)
    w = ["--weights", str(live)]
    assert cli(zs(ds, out, *w, model="open_clip:ViT-Tiny-P8"), capsys)[0] == 0
    _swap_in_place(b, live)
    code, _, err = cli(zs(ds, out, *w, model="open_clip:ViT-Tiny-P8"), capsys)
    assert code == 0 and "skipped" not in err
    fresh = tmp_path / "fresh"
    assert (
        cli(zs(ds, fresh, "--weights", str(b), "--no-cache", model="open_clip:ViT-Tiny-P8"), capsys)[0] == 0
    )
    swapped = next((out / "open_clip@ViT-Tiny-P8").rglob(f"*+weights-{file_sha256(live)[:8]}.json"))
    assert json.loads(swapped.read_text())["metrics"] == metrics_of(fresh)


# ------------------------------------------------------------------ 5. 16-bit and odd pixel modes


def test_sixteen_bit_png_scores_like_eight_bit(trained_weights, tmp_path, cache, capsys):
    eight = fixtures.imagefolder(tmp_path / "eight", n_train=1, n_test=3, size=32)
    sixteen = tmp_path / "sixteen"
    shutil.copytree(eight, sixteen)
    for p in sixteen.rglob("*.png"):
        grey = np.asarray(Image.open(p).convert("L")).astype(np.uint16) * 257
        Image.fromarray(grey).save(p)  # mode I;16
        Image.fromarray((grey >> 8).astype(np.uint8)).save(eight / p.relative_to(sixteen))
    assert Image.open(next(sixteen.rglob("*.png"))).mode == "I;16"
    from silc_bench.data.images import open_image

    for p in sixteen.rglob("*.png"):  # PIL's own convert("RGB") makes these all white
        assert np.array_equal(
            np.asarray(open_image(p)), np.asarray(open_image(eight / p.relative_to(sixteen)))
        )
    for d in (eight, sixteen):
        assert (
            cli(
                zs(
                    f"imagefolder:{d}",
                    tmp_path / d.name,
                    "--weights",
                    str(trained_weights),
                    model="open_clip:ViT-Tiny-P8",
                ),
                capsys,
            )[0]
            == 0
        )
    assert metrics_of(tmp_path / "eight") == metrics_of(tmp_path / "sixteen")


def test_sixteen_bit_rule_matches_mmseg_loader(tmp_path):
    import mmcv

    from silc_bench.data.images import open_image

    grey = (np.arange(32 * 32).reshape(32, 32) * 61).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    ours = np.asarray(open_image(tmp_path / "g.png"))
    theirs = mmcv.imread(str(tmp_path / "g.png"))[..., ::-1]  # BGR
    assert np.array_equal(ours, theirs)


def test_float_images_are_refused(tmp_path, cache, capsys):
    base = fixtures.imagefolder(tmp_path / "f", n_train=1, n_test=1, size=32)
    victim = sorted(base.rglob("*.png"))[0]
    Image.fromarray(np.zeros((32, 32), np.float32)).save(victim.with_suffix(".tif"))
    victim.unlink()
    code, _, err = cli(zs(f"imagefolder:{base}", tmp_path / "o"), capsys)
    assert code == 2 and "pixel mode 'F'" in err and err.count("\n") == 1
    assert not list((tmp_path / "o").rglob("*.json"))


# ------------------------------------------------------------------ 6. NaN in results and checks


def _valid_result(tmp_path: Path, folder: Path, capsys) -> Path:
    assert cli(zs(f"imagefolder:{folder}", tmp_path / "o"), capsys)[0] == 0
    (path,) = (tmp_path / "o").rglob("*.json")
    return path


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", '"12"', "true"])
def test_check_refuses_non_finite_metrics(bad, folder, cache, tmp_path, capsys):
    path = _valid_result(tmp_path, folder, capsys)
    path.write_text(path.read_text().replace('"top1": ', f'"top1": {bad}, "was": ', 1))
    code, _, err = cli(["check", str(path.parent)], capsys)
    assert code == 2 and str(path) in err and "top1" in err and "Traceback" not in err


def test_regression_counts_nan_as_a_failure():
    from silc_bench.results.regression import compare
    from silc_bench.results.schema import Result

    r = Result(
        model="silc-tiny",
        variant="teacher",
        checkpoint_sha256=fixtures.registry_sha("silc-tiny"),
        run_key=fixtures.MINIMAL_RUN_KEY,
        task="zs-cls",
        task_version=1,
        dataset="shapes-cls",
        dataset_fingerprint="x",
        protocol={},
        metrics={"top1": float("nan"), "top5": 90.28},
        precision="fp32",
    )
    rows = compare([(Path("r.json"), r)], 1.0)
    problems = [row.problem for row in rows if not row.ok]
    assert len(rows) == 2 and len(problems) == 1 and "top1" in problems[0]


def test_check_names_every_bad_file(folder, cache, tmp_path, capsys):
    path = _valid_result(tmp_path, folder, capsys)
    (path.parent / "list.json").write_text("[1, 2]")
    (path.parent / "other.json").write_text('{"schema_version": 2, "model": "x"}')
    (path.parent / "text.json").write_text("not json")
    code, _, err = cli(["check", str(tmp_path / "o")], capsys)
    assert code == 2 and "Traceback" not in err
    for name in ("list.json", "other.json", "text.json"):
        assert name in err
    assert err.count("\n") == 3


# ------------------------------------------------------------------ 7. class sets and image counts


def test_empty_and_looping_class_folders_are_errors(folder, cache, tmp_path, capsys):
    ds = f"imagefolder:{folder}"
    (folder / "classnames.txt").unlink()  # class names from the folders, as a user would have
    (folder / "test" / "zz_empty").mkdir()
    (folder / "train" / "zz_empty").mkdir()
    code, _, err = cli(zs(ds, tmp_path / "o"), capsys)
    assert code == 2 and "holds no images" in err
    for split in ("test", "train"):
        (folder / split / "zz_empty").rmdir()
        (folder / split / "zz_loop").symlink_to(folder / split)
    code, _, err = cli(zs(ds, tmp_path / "o"), capsys)
    assert code == 2 and "symlink loop" in err
    for split in ("test", "train"):
        (folder / split / "zz_loop").unlink()
        (folder / split / "zz_twin").symlink_to(folder / split / "red_circle")
    code, _, err = cli(zs(ds, tmp_path / "o"), capsys)
    assert code == 2 and "same folder" in err
    assert not list((tmp_path / "o").rglob("*.json"))


def test_registry_redefinition_needs_override(tmp_path, monkeypatch, capsys):
    reg = tmp_path / "extra.yaml"
    reg.write_text(
        "models:\n  tiny-random:\n    arch: {open_clip: ViT-Tiny-P8}\n    weights: {random_init_seed: 5}\n"
    )
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))
    code, _, err = cli(["list", "models"], capsys)
    assert code == 2 and "already defined" in err and "override: true" in err
    reg.write_text(reg.read_text().replace("    arch:", "    override: true\n    arch:"))
    assert cli(["list", "models"], capsys)[0] == 0


def test_damaged_generated_set_is_regenerated(tmp_path, monkeypatch, capsys):
    """ShapesWorld verifies its manifest: deleted or edited files are regenerated, never
    scored as if the set were whole."""
    from silc_bench.data import shapesworld

    small = shapesworld.Sizes(train_scenes=4, cls_per_class=(1, 2), retrieval_scenes=4, seg_scenes=2)
    monkeypatch.setattr(shapesworld.generate, "__defaults__", (0, small))
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    root = shapesworld.ensure(tmp_path / "cache" / "datasets")
    n = len(list(root.rglob("*.png")))
    victims = sorted((root / "cls" / "test").rglob("*.png"))[:5]
    for v in victims:
        v.unlink()
    edited = sorted((root / "retrieval" / "images").glob("*.png"))[0]
    edited.write_bytes(edited.read_bytes() + b"\0")
    assert shapesworld.verify(root) is not None
    capsys.readouterr()
    root = shapesworld.ensure(tmp_path / "cache" / "datasets")
    assert "regenerating" in capsys.readouterr().err
    assert len(list(root.rglob("*.png"))) == n and shapesworld.verify(root) is None


# ------------------------------------------------------------------ the same family, found here


def _seg_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run", "--task", "zs-seg", "--model", "tiny-random", "--dataset", "voc21", "--protocol", "sclip",
        "--data-root", str(root), "--out", str(out), "--quiet", "--workers", "0", "--device", "cpu", *extra,
    ]  # fmt: skip


def test_segmentation_fingerprint_covers_label_content(tmp_path, cache, capsys):
    """zs-seg fingerprinted file names only: an edited label map kept the old result."""
    from tests import seg_fixtures

    root = seg_fixtures.make_all(tmp_path / "seg", n=2)
    out = tmp_path / "o"
    assert cli(_seg_args(root, out), capsys)[0] == 0
    first = result_of(out)
    label = sorted((root / "VOCdevkit" / "VOC2012" / "SegmentationClass").glob("*.png"))[0]
    arr = np.asarray(Image.open(label)).copy()
    arr[:, : arr.shape[1] // 2] = 255  # half the map becomes "ignore"
    Image.fromarray(arr).save(label)
    code, _, err = cli(_seg_args(root, out), capsys)
    assert code == 0 and "dataset_fingerprint" in err
    assert result_of(out)["dataset_fingerprint"] != first["dataset_fingerprint"]


def test_a_partial_standard_split_is_flagged(tmp_path, data_root, cache, capsys):
    """A standard dataset's class list is fixed, so missing images do not change it: a
    run on fewer images than the published split says so, in the result and the table."""
    out = tmp_path / "o"
    code, table, err = cli(zs("cifar100", out, root=data_root), capsys)
    assert code == 0 and "not comparable" in err
    assert any("published split has 10,000" in n for n in result_of(out)["notes"])
    scored = result_of(out)["protocol"]["partial_split"]  # the fact is a field, not prose
    assert scored["published"] == 10_000 and scored["scored"] < 10_000
    assert "cifar100 ‡" in table
    code, table, _ = cli(zs("cifar100", out, "--limit", "5", root=data_root), capsys)
    assert code == 0 and "cifar100 +limit-5 ‡" in table and "--limit 5" in table


def test_a_partial_split_is_read_from_the_field_and_from_old_notes():
    from silc_bench.results.audit import not_the_registry_run, partial_split
    from silc_bench.results.schema import Result

    def result(protocol, notes):
        return Result(model="m", variant=None, checkpoint_sha256="0" * 64, task="zs-cls", task_version=1,
                      dataset="cifar100", dataset_fingerprint="x", protocol=protocol, metrics={"top1": 1.0},
                      precision="fp32", notes=notes, run_key=fixtures.MINIMAL_RUN_KEY)  # fmt: skip

    new = result({"partial_split": {"scored": 9, "published": 10_000}}, [])
    old = result({}, ["cifar100: scored 9 images, the published split has 10,000: not comparable with "
                      "published numbers"])  # fmt: skip
    assert partial_split(new) == partial_split(old) == "scored 9 images, the published split has 10,000"
    why = "fewer images than the published split"
    assert not_the_registry_run(new, None) == not_the_registry_run(old, None) == why
    assert partial_split(result({}, ["the words not comparable, in passing"])) is None


def test_editing_a_class_name_asset_replaces_the_result(folder, cache, tmp_path, monkeypatch, capsys):
    from silc_bench import api

    out = tmp_path / "o"
    assert cli(zs(f"imagefolder:{folder}", out), capsys)[0] == 0
    monkeypatch.setattr(api, "assets_sha256", lambda: "edited")
    code, _, err = cli(zs(f"imagefolder:{folder}", out), capsys)
    assert code == 0 and "assets_sha256" in err


def test_cache_list_and_clear(folder, cache, tmp_path, capsys):
    assert cli(zs(f"imagefolder:{folder}", tmp_path / "o"), capsys)[0] == 0
    code, out, err = cli(["cache", "list"], capsys)
    assert code == 0 and "2 entries" in err and "| image" in out and "| text" in out
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:5]] for ln in out.splitlines()[2:]}
    assert rows["image"][0] == "tiny-random" and rows["image"][2].startswith(
        f"imagefolder:{folder}/test ("
    ), rows
    assert rows["text"][0] == "tiny-random" and "prompts or captions" in rows["text"][2], rows
    code, _, err = cli(["cache", "clear", "--model", "silc-tiny"], capsys)  # another model: nothing
    assert code == 0 and "removed 0 entries" in err
    code, _, err = cli(["cache", "clear", "--model", "tiny-random"], capsys)
    assert code == 0 and "removed 2 entries" in err
    assert not list((cache / "features").rglob("*.safetensors"))
    generated = cache / "datasets" / "shapesworld-v9-seed0"
    generated.mkdir(parents=True)
    code, _, err = cli(["cache", "clear"], capsys)
    assert code == 0 and "generated datasets" in err and "--datasets" in err and generated.is_dir()
    code, _, err = cli(["cache", "clear", "--datasets"], capsys)
    assert code == 0 and "removed 1 generated datasets" in err and not generated.exists()


def test_an_image_edited_and_restored_while_it_is_read_is_never_cached(
    folder, cache, tmp_path, monkeypatch, capsys
):
    """The file changes under the run (another process rewrites it) and is put back before
    the end: the bytes read are checked against the fingerprint's, so nothing is cached
    under the original content's key and no result is written."""
    from PIL import Image

    from silc_bench.data import images

    victim = sorted((folder / "test").rglob("*.png"))[-1]
    original = victim.read_bytes()
    real = images.open_image_hashed
    calls = []

    def edited_mid_run(path):  # noqa: ANN001, ANN202
        calls.append(path)
        if len(calls) == 1:  # another process rewrites the last image while the first is read
            Image.new("RGB", (32, 32), (255, 0, 255)).save(victim)
        out = real(path)
        if Path(path) == victim:
            victim.write_bytes(original)  # and puts it back
        return out

    monkeypatch.setattr(images, "open_image_hashed", edited_mid_run)
    out = tmp_path / "o"
    code, _, err = cli(zs(f"imagefolder:{folder}", out), capsys)
    assert code == 2 and "changed while it was being read" in err and victim.name in err
    assert not list(out.rglob("*.json")) and not list((cache / "features").rglob("image/*.safetensors"))
    monkeypatch.setattr(images, "open_image_hashed", real)
    assert cli(zs(f"imagefolder:{folder}", out), capsys)[0] == 0
    clean = tmp_path / "clean"
    assert cli(zs(f"imagefolder:{folder}", clean, "--no-cache"), capsys)[0] == 0
    assert metrics_of(out) == metrics_of(clean)


def test_an_empty_cache_variable_is_unset_and_clear_deletes_only_our_entries(tmp_path, monkeypatch, capsys):
    from silc_bench.core.paths import cache_root

    monkeypatch.setenv("SILC_BENCH_CACHE", "")
    assert cache_root() != Path("") and cache_root().name == "silc-bench"
    mine = tmp_path / "c"
    monkeypatch.setenv("SILC_BENCH_CACHE", str(mine))
    users = mine / "features" / "image" / "ab" / "my_own_model.safetensors"
    users.parent.mkdir(parents=True)
    users.write_bytes(b"a user's file")
    assert cli(["cache", "clear"], capsys)[0] == 0
    assert users.read_bytes() == b"a user's file"


def test_a_full_disk_costs_neither_the_evaluation_nor_a_traceback(
    folder, cache, tmp_path, monkeypatch, capsys
):
    """The cache write fails (SafetensorError, not OSError): a warning, the run goes on; the
    result write fails: one line, exit 2, with the numbers."""
    import safetensors

    from silc_bench.features import cache as feature_cache
    from silc_bench.results import schema

    def full(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise safetensors.SafetensorError("No space left on device (os error 28)")

    monkeypatch.setattr(feature_cache, "save_file", full)
    out = tmp_path / "o"
    code, _, err = cli(zs(f"imagefolder:{folder}", out), capsys)
    assert code == 0 and "features will not be cached" in err and list(out.rglob("*.json"))

    def no_space(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(schema, "atomic_write_text", no_space)
    code, _, err = cli(zs(f"imagefolder:{folder}", tmp_path / "o2"), capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("silc-bench: error")]
    assert code == 2 and len(lines) == 1 and "No space left" in lines[0] and "top1" in lines[0]
    assert "Traceback" not in err


def test_runs_with_other_weights_get_files_of_their_own(folder, cache, tmp_path, capsys):
    """Two `--weights` files into one `--out` (or one beside the registry's own result) never
    overwrite each other: each file is named by its weights, and never stands for the entry."""
    from silc_bench.core.hashing import file_sha256
    from silc_bench.results.audit import load_results, not_the_registry_run

    out = tmp_path / "o"
    files = [_model_file(tmp_path / f"w{seed}.safetensors", seed) for seed in (1, 2)]
    for w in files:
        args = zs(f"imagefolder:{folder}", out, "--weights", str(w), model="open_clip:ViT-Tiny-P8")
        assert cli(args, capsys)[0] == 0
    written = sorted(p.name for p in out.rglob("*.json"))
    assert len(written) == 2, written
    for w in files:
        assert any(f"+weights-{file_sha256(w)[:8]}.json" in name for name in written)
    results, bad = load_results(out)
    assert not bad and all(not_the_registry_run(r, None) == "weights other than the registry's (--weights)"
                           for _, r in results)  # fmt: skip
    again = zs(f"imagefolder:{folder}", out, "--weights", str(files[0]), model="open_clip:ViT-Tiny-P8")
    code, _, err = cli(again, capsys)
    assert code == 0 and "skipped" in err  # its own file answers it
