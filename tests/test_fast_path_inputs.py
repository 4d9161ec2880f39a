"""The fast-path options and the cache commands under hostile input:
a bf16 or `--compile` number never stands for the fp32 one, and every bad input is one line
with exit 2, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image

from silc_bench.cli import main
from tests.fixtures import run_args


def _one_line_exit_2(argv: list[str], capsys, *needles: str) -> str:  # noqa: ANN001
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def test_other_precision_gets_its_own_file_and_never_stands_for_fp32(tmp_path, capsys):
    from silc_bench.results.audit import not_the_registry_run
    from silc_bench.results.schema import read_result

    out = tmp_path / "r"
    base = run_args("zs-cls", "silc-tiny", "shapes-cls", out, tmp_path / "data", "--limit", "12")
    assert main(base) == 0
    assert main([*base, "--precision", "bf16"]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in out.rglob("*.json"))
    assert names == ["shapes-cls+limit-12+bf16.json", "shapes-cls+limit-12.json"], names
    fp32 = read_result(next(out.rglob("shapes-cls+limit-12.json")))
    bf16 = read_result(next(out.rglob("*+bf16.json")))
    assert fp32.precision == "fp32" and bf16.precision == "bf16"  # the fp32 file was not replaced
    bf16.protocol.pop("limit", None)  # as if a full run: precision alone must disqualify it
    bf16.run_key.pop("limit", None)
    bf16.protocol["num_images"] = 360  # the whole generated split
    assert "precision bf16" in (not_the_registry_run(bf16, None) or "")


def test_compile_that_cannot_work_and_options_a_task_ignores_are_refused(tmp_path, capsys, monkeypatch):
    base = run_args("zs-cls", "tiny-random", "shapes-cls", tmp_path / "r", tmp_path / "d", "--no-cache")
    monkeypatch.setenv("SILC_BENCH_COMPILE_BACKEND", "no-such-backend")
    _one_line_exit_2([*base, "--compile"], capsys, "--compile", "no-such-backend")
    seg = run_args("zs-seg", "silc-tiny", "shapes-seg", tmp_path / "r", tmp_path / "d")
    _one_line_exit_2([*seg, "--compile"], capsys, "--compile", "zs-seg")
    _one_line_exit_2([*seg, "--decode", "gpu"], capsys, "--decode gpu", "zs-seg")
    _one_line_exit_2([*base, "--batch-size", str(2**63)], capsys, "--batch-size")
    assert not (tmp_path / "r").exists()


def test_the_compile_backend_is_part_of_the_key(monkeypatch):
    from silc_bench.models.execution import Execution
    from silc_bench.results.key import execution_tags

    monkeypatch.delenv("SILC_BENCH_COMPILE_BACKEND", raising=False)
    assert Execution(compile=True).key() == {"compile": "inductor"}
    assert execution_tags("fp32", Execution(compile=True).key()) == ("compile",)
    monkeypatch.setenv("SILC_BENCH_COMPILE_BACKEND", "eager")
    assert Execution(compile=True).key() == {"compile": "eager"}
    assert execution_tags("bf16", Execution(compile=True).key()) == ("bf16", "compile-eager")
    assert Execution().key() == {}


def test_an_empty_jpeg_on_the_device_decoder_is_one_line(tmp_path, capsys):
    from silc_bench.data.synthetic import make_imagefolder

    root = make_imagefolder(tmp_path / "imgs", n_train=2, n_test=3, size=40)
    for png in list(root.rglob("*.png")):
        Image.open(png).convert("RGB").save(png.with_suffix(".jpg"), "JPEG")
        png.unlink()
    empty = sorted((root / "test").rglob("*.jpg"))[0]
    empty.write_bytes(b"")
    args = run_args(
        "zs-cls", "silc-tiny", f"imagefolder:{root}", tmp_path / "r", tmp_path / "d", "--no-cache"
    )
    args += ["--decode", "gpu"]
    for workers in ("0", "2"):
        _one_line_exit_2([*args, "--workers", workers], capsys, empty.name)
    assert not (tmp_path / "r").exists()


def test_cache_commands_survive_odd_entries_and_refuse_an_empty_model(tmp_path, capsys, monkeypatch):
    from silc_bench.features.cache import entries

    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    shard = tmp_path / "cache" / "features" / "image" / "zz"
    shard.mkdir(parents=True)
    (shard / "dir.safetensors").mkdir()  # a folder with an entry's name
    os.symlink(tmp_path / "gone", shard / "dangling.safetensors")  # a broken link
    (shard / "junk.safetensors").write_bytes(b"not safetensors")  # not named by our key: not ours
    ours = shard.with_name("ab") / ("ab" + "0" * 62 + ".safetensors")
    ours.parent.mkdir()
    ours.write_bytes(b"damaged")  # named by our key but damaged: listed, cleared
    assert [e["path"].name for e in entries()] == [ours.name]
    assert main(["cache", "list"]) == 0
    capsys.readouterr()
    _one_line_exit_2(["cache", "clear", "--model", ""], capsys, "--model")
    assert ours.exists()  # an empty name never means "everything"
    assert main(["cache", "clear"]) == 0
    assert not ours.exists() and (shard / "dir.safetensors").is_dir()
    assert (shard / "junk.safetensors").read_bytes() == b"not safetensors"  # a file of someone else's
    capsys.readouterr()


def test_result_json_is_what_the_name_says(tmp_path, capsys):
    """The `+channels-last` file records channels-last in its run key, and a plain run beside
    it records none: each file's name and content agree."""
    out = tmp_path / "r"
    base = run_args("zs-cls", "tiny-random", "shapes-cls", out, tmp_path / "d", "--limit", "4", "--no-cache")
    assert main(base) == 0 and main([*base, "--channels-last"]) == 0
    capsys.readouterr()
    files = {p.name: json.loads(p.read_text()) for p in Path(out).rglob("*.json")}
    assert files["shapes-cls+limit-4+channels-last.json"]["run_key"]["execution"] == {"channels_last": True}
    assert "execution" not in files["shapes-cls+limit-4.json"]["run_key"]


def test_only_run_is_distributed(tmp_path, capsys, monkeypatch):
    """Under torchrun, `demo`, `check --run` and the rest would do the whole job on every
    rank: refused, one line from rank 0 alone (the launcher's RANK, before any group)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    _one_line_exit_2(["demo", "--out", str(tmp_path / "d")], capsys, "only `run` and `train` are distributed")
    monkeypatch.setenv("RANK", "1")
    assert main(["demo", "--out", str(tmp_path / "d")]) == 2
    assert capsys.readouterr().err == ""  # rank 1 stays quiet
    assert not (tmp_path / "d").exists()


def test_compile_record_says_when_nothing_ran_through_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SILC_BENCH_COMPILE_BACKEND", "eager")
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "r"
    base = run_args("zs-cls", "tiny-random", "shapes-cls", out, tmp_path / "d", "--limit", "4", "--compile")
    assert main(base) == 0 and main([*base, "--force"]) == 0  # the second reads the cache
    capsys.readouterr()
    (res,) = list(out.rglob("*.json"))
    rec = json.loads(res.read_text())["env"]["execution"]["compile"]
    assert rec["took_effect"] is None and "cache" in rec["why_unknown"]


def test_launcher_variables_outside_torchrun_never_hide_an_error(tmp_path, capsys, monkeypatch):
    """RANK=1 without WORLD_SIZE (a SLURM job step, say) is one process: its error prints;
    a WORLD_SIZE that no launcher would set means one process, not a traceback."""
    args = run_args("zs-cls", "no-such-model", "shapes-cls", tmp_path / "r", tmp_path / "d")
    monkeypatch.setenv("RANK", "1")
    _one_line_exit_2(args, capsys, "no-such-model")
    monkeypatch.setenv("WORLD_SIZE", "abc")
    _one_line_exit_2(args, capsys, "no-such-model")
    assert main(["list", "tasks"]) == 0
    capsys.readouterr()


def test_fast_path_options_key_only_the_features_they_touch(tmp_path, capsys, monkeypatch):
    """--channels-last re-encodes the images but reads the text from the cache (the option
    touches the image tower only); --decode gpu on a PNG split falls back to PIL, which is
    the plain run's computation, so its image entry is the plain run's."""
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    base = run_args("zs-cls", "tiny-random", "shapes-cls", tmp_path / "r", tmp_path / "d", "--limit", "6")
    assert main(base) == 0
    assert main([*base, "--channels-last"]) == 0
    assert main([*base, "--decode", "gpu"]) == 0
    capsys.readouterr()
    res = {p.name: json.loads(p.read_text()) for p in (tmp_path / "r").rglob("*.json")}
    plain = res["shapes-cls+limit-6.json"]["env"]["cache"]
    cl = res["shapes-cls+limit-6+channels-last.json"]["env"]["cache"]
    gpu = res["shapes-cls+limit-6+decode-gpu.json"]["env"]["cache"]
    assert plain["hits"] == 0 and plain["misses"] == 2  # image + text
    assert cl["hits"] == 1 and cl["misses"] == 1  # text read, images encoded again
    assert gpu["hits"] == 2 and gpu["misses"] == 0  # PNGs: PIL decoded them, as in the plain run
