"""The committed training configs load, and `shapesworld:` manifests resolve to the generated set."""

from __future__ import annotations

from pathlib import Path

import pytest

from silc_bench.config import REPO_ROOT
from silc_bench.train.config import load_config
from silc_bench.train.data import manifest_path, read_manifest


@pytest.mark.parametrize("name", ["silc-tiny", "clip-tiny"])
def test_shapes_configs_share_a_budget(name):
    cfg = load_config(REPO_ROOT / "configs" / "train" / f"{name}.yaml")
    assert cfg.objective.distill == (name == "silc-tiny")
    assert (cfg.optim.steps, cfg.batch_size, cfg.seed) == (400, 64, 0)


def test_shapesworld_manifest_resolves():
    path = manifest_path("shapesworld:train/manifest.csv")
    assert path.is_file() and path.parent.parent.name.startswith("shapesworld-v")
    pairs = read_manifest(path)
    assert len(pairs) == 3000 * 5
    assert manifest_path("data/x.csv") == Path("data/x.csv")


def test_pacl_config_loads():
    cfg = load_config(REPO_ROOT / "configs" / "train" / "pacl-tiny.yaml")
    assert cfg.pacl is not None and cfg.pacl.base_arch == "ShapesTiny-P8"
