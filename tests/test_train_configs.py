"""The committed training configs load, and `shapesworld:` manifests resolve to the generated set."""

from __future__ import annotations

from pathlib import Path

from silc_bench.core.paths import REPO_ROOT
from silc_bench.train.config import load_config
from silc_bench.train.data import manifest_path, read_manifest


def test_shapes_configs_share_a_budget():
    """silc-tiny and clip-tiny differ only in distillation: same model, data, optimiser, seed
    and contrastive view."""
    silc, clip = (
        load_config(REPO_ROOT / "configs" / "train" / f"{n}.yaml") for n in ("silc-tiny", "clip-tiny")
    )
    assert silc.objective.distill and not clip.objective.distill
    assert silc.optim == clip.optim and silc.model == clip.model and silc.data == clip.data
    assert (silc.batch_size, silc.seed) == (clip.batch_size, clip.seed) == (64, 0)
    assert silc.objective.global_scale == clip.objective.global_scale


def test_shapesworld_manifest_resolves():
    path = manifest_path("shapesworld:train/manifest.csv")
    assert path.is_file() and path.parent.parent.name.startswith("shapesworld-v")
    pairs = read_manifest(path)
    assert len(pairs) == 3000 * 5
    assert manifest_path("data/x.csv") == Path("data/x.csv")


def test_pacl_config_loads():
    cfg = load_config(REPO_ROOT / "configs" / "train" / "pacl-tiny.yaml")
    assert cfg.pacl is not None and cfg.pacl.base_arch == "ShapesTiny-P8"
