"""The GPU fast-path options, on the CPU: recorded, and the same numbers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from silc_bench.cli import main
from silc_bench.features import _forward_halving_on_oom
from tests.fixtures import run_args


def _res(folder):
    (path,) = list(folder.rglob("*.json"))
    return json.loads(path.read_text())


@pytest.mark.parametrize("flag", ["--compile", "--channels-last"])
def test_fast_path_flags_are_recorded_and_change_no_number(flag, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SILC_BENCH_COMPILE_BACKEND", "eager")  # dynamo capture, no C++ build
    plain, fast = tmp_path / "plain", tmp_path / "fast"
    assert main(run_args("zs-cls", "tiny-random", "shapes-cls", plain, tmp_path / "d", "--no-cache")) == 0
    assert (
        main(run_args("zs-cls", "tiny-random", "shapes-cls", fast, tmp_path / "d", "--no-cache", flag)) == 0
    )
    capsys.readouterr()
    a, b = _res(plain), _res(fast)
    assert a["metrics"] == b["metrics"]
    ex = b["env"]["execution"]
    if flag == "--compile":
        assert (
            ex["compile"]["requested"]
            and ex["compile"]["took_effect"]
            and ex["compile"]["backend"] == "eager"
        )
        assert b["run_key"]["execution"] == {"compile": True}
    else:
        assert ex["channels_last"] is True and b["run_key"]["execution"] == {"channels_last": True}
    assert "execution" not in a["run_key"]  # default runs keep the keys they always had


def test_cuda_out_of_memory_halves_the_batch_and_counts_it():
    calls = []

    def image_features(x):
        calls.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return {"embed": x.flatten(1)[:, :3] * 2}

    model = SimpleNamespace(image_features=image_features, execution={})
    x = torch.randn(7, 3, 4, 4)
    out = _forward_halving_on_oom(model, x)
    assert torch.equal(out["embed"], x.flatten(1)[:, :3] * 2)  # every image, in order
    assert model.execution["oom_halvings"] == 3 and max(c for c in calls if c <= 2) == 2
