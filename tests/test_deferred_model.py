"""A run whose every feature is cached builds no model (models/deferred.py): it serves the
model's remembered facts, imports neither open_clip nor torchvision, and writes the same
result. A memo that is damaged is rebuilt; one that disagrees with the model stops the
run with exit 2 before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from silc_bench.cli import main
from silc_bench.core.hashing import canonical_json, hash_obj
from tests.fixtures import run_args

pytestmark = pytest.mark.usefixtures("one_thread")

PROBE = """
import json, sys
from silc_bench.cli import main
code = main(json.loads(sys.argv[1]))
heavy = ("open_clip", "torchvision", "timm")
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def _run(args: list[str], cache: Path) -> tuple[dict, str]:
    env = {**os.environ, "SILC_BENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", PROBE, json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def _result(out: Path) -> dict:
    (path,) = out.rglob("*.json")
    return json.loads(path.read_text())


def _same_numbers(a: dict, b: dict) -> None:
    for k in ("metrics", "checkpoint_sha256", "run_key", "variant", "per_class"):
        assert a.get(k) == b.get(k), k
    assert a["env"]["model"] == b["env"]["model"]
    drop = {"text_encoding"}
    assert {k: v for k, v in a["protocol"].items() if k not in drop} == {
        k: v for k, v in b["protocol"].items() if k not in drop
    }
    assert a["protocol"]["text_encoding"] == b["protocol"]["text_encoding"]


def _main(args: list[str], cache: Path, monkeypatch, capsys) -> tuple[int, str]:  # noqa: ANN001
    monkeypatch.setenv("SILC_BENCH_CACHE", str(cache))
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def test_a_forced_rerun_with_every_feature_cached_builds_no_model(data_root, tmp_path, monkeypatch, capsys):
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = run_args("zs-cls", "tiny-random", "cifar100", out, data_root)
    first, err = _run(args, cache)
    assert first["code"] == 0 and "open_clip" in first["loaded"], err
    r1 = _result(out)
    (memo,) = (cache / "models").glob("*.json")
    again, err = _run([*args, "--force"], cache)
    assert again == {"code": 0, "loaded": []}, err  # no model built: nothing of open_clip's stack
    r2 = _result(out)
    _same_numbers(r1, r2)
    assert r2["env"]["cache"]["misses"] == 0
    # A damaged memo is not read: the model is built again and remembered again, whole.
    memo.write_text(memo.read_text()[:40])
    code, err = _main([*args, "--force"], cache, monkeypatch, capsys)
    assert code == 0, err
    _same_numbers(r1, _result(out))
    json.loads(memo.read_text())
    # Another key's memo (consistent in itself) under this key's name is not served either.
    entry = json.loads(memo.read_text())
    entry["key"]["precision"], entry["facts"]["checkpoint_sha256"] = "bf16", "0" * 64
    entry["sha256"] = hash_obj(entry["facts"])
    memo.write_text(canonical_json(entry))
    code, err = _main([*args, "--force"], cache, monkeypatch, capsys)
    assert code == 0, err
    r3 = _result(out)
    _same_numbers(r1, r3)
    assert json.loads(memo.read_text())["key"]["precision"] == "fp32"  # rebuilt, remembered again


def _edit_memo(cache: Path, edit) -> None:  # noqa: ANN001
    (memo,) = (cache / "models").glob("*.json")
    entry = json.loads(memo.read_text())
    edit(entry)
    entry["sha256"] = hash_obj(entry["facts"])  # a consistent entry, wrong facts
    memo.write_text(canonical_json(entry))


def test_a_memo_that_disagrees_with_the_model_stops_the_run(data_root, tmp_path, monkeypatch, capsys):
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = run_args("zs-cls", "tiny-random", "cifar100", out, data_root)
    assert _main(args, cache, monkeypatch, capsys)[0] == 0
    before = _result(out)
    # Another image size: the image features' key misses, so the towers are built and checked.
    _edit_memo(cache, lambda e: e["facts"]["preprocess"].update(size=e["facts"]["preprocess"]["size"] + 8))
    code, err = _main([*args, "--force"], cache, monkeypatch, capsys)
    assert code == 2 and "run again" in err and "preprocess" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _result(out) == before  # the old result stands; nothing half-written
    assert list((cache / "models").glob("*.json")) == []  # the memo is gone
    code, err = _main([*args, "--force"], cache, monkeypatch, capsys)
    assert code == 0, err
    _same_numbers(before, _result(out))


def test_with_the_cache_off_nothing_is_remembered(data_root, tmp_path, monkeypatch, capsys):
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = run_args("zs-cls", "tiny-random", "cifar100", out, data_root, "--no-cache")
    code, err = _main(args, cache, monkeypatch, capsys)
    assert code == 0, err
    assert not (cache / "models").exists()


def test_cache_clear_removes_the_remembered_facts(data_root, tmp_path, monkeypatch, capsys):
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = run_args("zs-cls", "tiny-random", "cifar100", out, data_root)
    assert _main(args, cache, monkeypatch, capsys)[0] == 0
    stranger = cache / "models" / "notes.json"  # not a memo's name: never removed
    stranger.write_text("{}")
    code, err = _main(["cache", "clear"], cache, monkeypatch, capsys)
    assert code == 0 and "1 remembered model facts" in err, err
    assert [p.name for p in (cache / "models").iterdir()] == ["notes.json"]


def test_the_architecture_names_read_from_disk_are_open_clips():
    """`open_clip_names` reads the config files instead of importing open_clip (seconds): it
    must list exactly what open_clip's registry lists once our configs are added."""
    import open_clip

    from silc_bench.models.arch import open_clip_names, register_configs

    register_configs()
    assert open_clip_names() == open_clip.list_models()


def test_two_copies_of_one_checkpoint_keep_their_own_facts(tmp_path, monkeypatch, capsys):
    """The same bytes at two paths are one identity (the numbers are shared) but the result
    records the file it read: the second copy's run must not take the first's facts."""
    import shutil

    from silc_bench.core.paths import PACKAGE_DIR

    cache = tmp_path / "cache"
    copies = [tmp_path / name / "w.safetensors" for name in ("a", "b")]
    for c in copies:
        c.parent.mkdir()
        shutil.copy(PACKAGE_DIR / "weights" / "clip-tiny.safetensors", c)
    files = []
    for i, w in enumerate(copies):
        out = tmp_path / f"out{i}"
        args = run_args("zs-cls", "open_clip:ShapesTiny-P8", "shapes-cls", out, tmp_path / "data")
        code, err = _main([*args, "--weights", str(w), "--limit", "8"], cache, monkeypatch, capsys)
        assert code == 0, err
        files.append(_result(out)["env"]["model"]["weights"]["files"])
    assert files == [[str(copies[0])], [str(copies[1])]]
    assert len(list((cache / "models").glob("*.json"))) == 2
