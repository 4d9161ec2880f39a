"""hf-hub: models downloaded on first use through the real huggingface_hub client, from a
Hub stand-in on 127.0.0.1 (tests/hub_server.py): nothing here reaches beyond loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from silc_bench.cli import main
from tests.fixtures import run_args
from tests.hub_server import Hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, bytes]:
    """tiny-random as an open_clip Hub repository holds it: config + safetensors."""
    folder = tmp_path_factory.mktemp("export") / "tiny"
    assert main(["export", "tiny-random", "--out", str(folder)]) == 0
    return {n: (folder / n).read_bytes() for n in ("open_clip_config.json", "open_clip_model.safetensors")}


@pytest.fixture
def hub(exported, tmp_path, monkeypatch):  # noqa: ANN201
    with Hub() as h:
        for name, data in exported.items():
            h.add("org/tiny", name, data, commit=COMMIT)
        for var in ("HF_HUB_OFFLINE", "SILC_BENCH_OFFLINE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        yield h


def _run(model: str, out: Path, data_root: Path, *extra: str) -> int:
    return main(run_args("zs-cls", model, "cifar100", out, data_root, *extra))


def _result(out: Path) -> dict:
    (path,) = out.rglob("*.json")
    return json.loads(path.read_text())


def test_first_use_downloads_once_and_records_the_commit(hub, data_root, tmp_path, capsys):
    assert _run("hf-hub:org/tiny", tmp_path / "a", data_root) == 0, capsys.readouterr().err
    assert hub.gets["open_clip_model.safetensors"] == 1 and hub.gets["open_clip_config.json"] == 1
    source = _result(tmp_path / "a")["env"]["model"]["source"]
    assert source == {"form": "hf-hub", "repo": "org/tiny", "revision": COMMIT}
    assert _run("hf-hub:org/tiny", tmp_path / "b", data_root) == 0  # warm: nothing downloaded again
    assert hub.gets["open_clip_model.safetensors"] == 1
    assert _result(tmp_path / "a")["metrics"] == _result(tmp_path / "b")["metrics"]
    pinned = f"hf-hub:org/tiny@{COMMIT}"
    assert _run(pinned, tmp_path / "c", data_root) == 0
    assert _result(tmp_path / "c")["env"]["model"]["source"]["pinned"] == COMMIT


def test_offline_reads_a_warm_cache_and_names_the_files_of_a_cold_one(hub, data_root, tmp_path, monkeypatch,
                                                                        capsys):  # fmt: skip
    assert _run("hf-hub:org/tiny", tmp_path / "a", data_root) == 0
    hub.gets.clear()
    assert _run("hf-hub:org/tiny", tmp_path / "b", data_root, "--offline") == 0
    assert sum(hub.gets.values()) == 0
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cold"))
    capsys.readouterr()
    assert _run("hf-hub:org/tiny", tmp_path / "c", data_root, "--offline") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "org/tiny" in err and "open_clip_config.json" in err and "offline" in err
    assert sum(hub.gets.values()) == 0 and not (tmp_path / "c").exists()


def test_an_interrupted_download_resumes_or_restarts_cleanly(hub, exported, data_root, tmp_path, capsys):
    hub.drop_first.add("open_clip_model.safetensors")
    first = _run("hf-hub:org/tiny", tmp_path / "a", data_root)
    if first != 0:  # the client gave up: one line, and the next run finishes the file
        assert capsys.readouterr().err.count("\n") == 1
        assert _run("hf-hub:org/tiny", tmp_path / "a", data_root) == 0
    assert "open_clip_model.safetensors" in hub._dropped  # the transfer really was cut
    blobs = list((tmp_path / "hub-cache").rglob("blobs/*"))
    assert any(b.read_bytes() == exported["open_clip_model.safetensors"] for b in blobs)
    assert not [b for b in blobs if b.name.endswith(".incomplete")]


def test_bytes_that_do_not_match_their_etag_are_refused_and_not_kept(hub, data_root, tmp_path, capsys):
    hub.corrupt.add("open_clip_model.safetensors")
    assert _run("hf-hub:org/tiny", tmp_path / "a", data_root) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "do not match their ETag" in err and not (tmp_path / "a").exists()
    assert _run("hf-hub:org/tiny", tmp_path / "b", data_root, "--offline") == 2  # nothing kept as good
    hub.corrupt.clear()
    assert _run("hf-hub:org/tiny", tmp_path / "c", data_root) == 0  # downloaded afresh


def test_a_repository_without_an_open_clip_config_is_one_line(hub, data_root, tmp_path, capsys):
    hub.add("org/empty", "README.md", b"nothing here")
    assert _run("hf-hub:org/empty", tmp_path / "a", data_root) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "open_clip_config.json" in err


@pytest.mark.parametrize("name", ["hf-hub:a/b/c", "hf-hub:../../x", "hf-hub:", "hf-hub:/", "hf-hub:a"])
def test_a_malformed_hub_name_is_one_line_even_offline(name, data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert _run(name, tmp_path / "o", data_root) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ORG/NAME" in err and "Traceback" not in err


def test_an_open_clip_pretrained_tag_downloads_through_the_hub_on_first_use(
    hub, data_root, tmp_path, monkeypatch, capsys
):
    """`open_clip:ARCH/TAG` resolves the tag in open_clip's own pretrained table and fetches
    its `hf_hub` repository with the real client: once, then from the cache, and offline from
    the warm cache. (A stand-in tag points at the loopback Hub's tiny repository: a real one
    names a repository of hundreds of MB.)"""
    import open_clip

    real_list, real_cfg = open_clip.list_pretrained, open_clip.get_pretrained_cfg
    monkeypatch.setattr(open_clip, "list_pretrained", lambda: [*real_list(), ("ViT-Tiny-P8", "hubtest")])
    monkeypatch.setattr(
        open_clip,
        "get_pretrained_cfg",
        lambda a, t: (
            {"hf_hub": "org/tiny/", "mean": (0.5,) * 3, "std": (0.5,) * 3}
            if (a, t) == ("ViT-Tiny-P8", "hubtest")
            else real_cfg(a, t)
        ),
    )
    name = "open_clip:ViT-Tiny-P8/hubtest"
    assert _run(name, tmp_path / "a", data_root) == 0, capsys.readouterr().err
    assert hub.gets["open_clip_model.safetensors"] == 1
    source = _result(tmp_path / "a")["env"]["model"]["source"]
    assert source["form"] == "open_clip-tag" and source["repo"] == "org/tiny" and source["revision"] == COMMIT
    assert _run(name, tmp_path / "b", data_root) == 0 and hub.gets["open_clip_model.safetensors"] == 1
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _run(name, tmp_path / "c", data_root, "--force") == 0
    assert _result(tmp_path / "a")["metrics"] == _result(tmp_path / "c")["metrics"]
