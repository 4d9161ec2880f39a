"""ShapesWorld v3 training data: groups that only shape tells apart, captions that name the
shapes, grouped batches and the curriculum, the config's checks, and v2 left as it was."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from silc_bench.cli import main
from silc_bench.core.paths import REPO_ROOT
from silc_bench.data import shapesworld, shapesworld_v3
from silc_bench.data.shapesworld import COLOURS, SHAPES, Sizes, generate
from silc_bench.data.shapesworld_v3 import (
    CAPTION_KINDS,
    GROUP_SCENES,
    TrainSizes,
    captions_v3,
    generate_train,
)
from silc_bench.train.config import DataConfig, load_config
from silc_bench.train.data import (
    GroupSampling,
    PairDataset,
    group_sampling,
    grouped_batch,
    index_groups,
    micro_batches,
    read_manifest,
)

V3_CONFIG = REPO_ROOT / "configs" / "train" / "clip-tiny.yaml"  # the shipped recipe trains on v3
# MANIFEST.json of the small v2 worlds, measured before v3 existed: the evaluation sets
# (seed 0) and the validation world (seed 1) must stay byte for byte what they were.
SMALL = Sizes(train_scenes=6, cls_per_class=(1, 1), retrieval_scenes=4, seg_scenes=3)
V2_MANIFESTS = {
    0: "6bd4553a925b4661137cfdb9e77551ee3b71da2ca811d27fbc3d6ede27f0931b",
    1: "c5ee031821cceee518f5ea6e16bcf16a1e73e7c66ba04ec2c68d0635003a24f5",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_train(tmp_path_factory.mktemp("v3") / "world", seed=0, sizes=TrainSizes(groups=10))


def _named(caption: str, vocabulary: tuple[str, ...] | list[str]) -> list[str]:
    return sorted(w.strip(".,:") for w in caption.split() if w.strip(".,:") in vocabulary)


def test_v2_generator_and_its_root_are_unchanged(tmp_path):
    for seed, sha in V2_MANIFESTS.items():
        root = generate(tmp_path / f"s{seed}", seed=seed, sizes=SMALL)
        assert hashlib.sha256((root / "MANIFEST.json").read_bytes()).hexdigest() == sha
    assert shapesworld.VERSION == 2 and shapesworld_v3.TRAIN_VERSION == 3


def test_a_group_shares_colours_and_background_and_differs_in_shape():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3):
        scenes = shapesworld_v3.group(rng, 64, n)
        assert len(scenes) == GROUP_SCENES
        assert len({tuple(c for c, _, _ in objs) for _, objs, _ in scenes}) == 1  # same colours, in order
        assert len({texture for _, _, texture in scenes}) == 1
        assert all(len(objs) == n for _, objs, _ in scenes)  # no object dropped
        shape_sets = [tuple(sorted(s for _, s, _ in objs)) for _, objs, _ in scenes]
        assert len(set(shape_sets)) == GROUP_SCENES
        for kind in range(len(CAPTION_KINDS)):  # every kind's captions tell the group apart
            assert len({captions_v3(objs, t)[kind] for _, objs, t in scenes}) == GROUP_SCENES


def test_captions_always_name_the_shapes():
    objs = [("red", "circle", "on the left"), ("blue", "cross", "at the top")]
    caps = captions_v3(objs, "striped")
    assert len(caps) == len(CAPTION_KINDS)
    assert all(_named(c, SHAPES) == ["circle", "cross"] for c in caps)
    assert "a circle and a cross." in caps and "a photo of a red circle and a blue cross." in caps
    assert not any("shape and" in c or "red shape" in c for c in caps)  # never the colours alone


def test_manifest_has_groups_and_passes_the_manifest_check(world):
    rows = list(csv.DictReader(open(world / "train" / "manifest.csv")))
    assert len(rows) == 10 * GROUP_SCENES * len(CAPTION_KINDS)
    assert set(rows[0]) == {"image", "caption", "group", "kind", "objects"}
    assert shapesworld.verify(world) is None
    (world / "train" / rows[0]["image"]).write_bytes(b"edited")
    try:
        assert "files changed" in shapesworld.verify(world)
    finally:
        generate_train(world, seed=0, sizes=TrainSizes(groups=10))


def test_a_grouped_batch_is_whole_groups_with_one_caption_kind(world):
    pairs = read_manifest(world / "train" / "manifest.csv")
    groups = index_groups(pairs, 4)
    single = [g for g in groups if g.objects == 1]
    sampling = GroupSampling(size=4, single_object_batches=3)
    for number in (0, 5):
        rows = grouped_batch((groups, single), sampling, 8, seed=0, number=number, rank=0)
        assert rows == grouped_batch((groups, single), sampling, 8, seed=0, number=number, rank=0)
        assert len(rows) == 8
        for block in (rows[:4], rows[4:]):
            ps = [pairs[i] for i in block]
            assert len({p.group for p in ps}) == 1 and len({p.kind for p in ps}) == 1
            assert len({p.image for p in ps}) == 4 and len({p.caption for p in ps}) == 4
            assert len({tuple(_named(p.caption, list(COLOURS))) for p in ps}) <= 1  # colours shared
            assert all(_named(p.caption, SHAPES) for p in ps)
            if number < 3:
                assert {p.objects for p in ps} == {1}  # the curriculum: single objects first
    other = grouped_batch((groups, single), sampling, 8, seed=0, number=6, rank=1)
    assert other != grouped_batch((groups, single), sampling, 8, seed=0, number=6, rank=0)


def test_micro_batches_resume_at_the_same_batch(world):
    from silc_bench.train.augment import MultiCrop

    pairs = read_manifest(world / "train" / "manifest.csv")
    dataset = PairDataset(pairs, MultiCrop(image_size=16, local_size=8, n_global=1, n_local=0), seed=0)
    sampling = GroupSampling(size=2)
    first = micro_batches(dataset, 4, 1, 0, 0, start=0, groups=sampling)
    batches = [next(first)["index"].tolist() for _ in range(3)]
    resumed = next(micro_batches(dataset, 4, 1, 0, 0, start=2, groups=sampling))
    assert resumed["index"].tolist() == batches[2]
    assert [pairs[i].group for i in batches[0]][::2] == [pairs[i].group for i in batches[0]][1::2]


def test_the_shipped_tiny_recipe_trains_on_v3_groups_and_plain_data_keeps_plain_batches():
    cfg = load_config(V3_CONFIG)
    d = cfg.data
    assert (d.world_version, d.hard_negative_group, d.curriculum_steps) == (3, 4, 700)
    assert group_sampling(d) == GroupSampling(size=4, single_object_batches=700)
    assert group_sampling(d, grad_accum=2) == GroupSampling(size=4, single_object_batches=1400)
    assert cfg.optim.steps == 1000  # silc-tiny shares it (test_train_configs.py)
    assert group_sampling(DataConfig(manifest=d.manifest)) is None


@pytest.mark.parametrize(
    "flag, says",
    [
        ("data.world_version=4", "data.world_version must be 2 or 3"),
        ("data.hard_negative_group=5", "must be a multiple of data.hard_negative_group 5"),
        ("data.hard_negative_group=8", "at most 6 for ShapesWorld v3"),
        ("data.hard_negative_group=0", "data.hard_negative_group must be at least 1"),
        ("data.hard_negative_group=two", "data.hard_negative_group: expected a whole number"),
        ("data.world_version=2", "needs a manifest with a group column"),
        ("data.curriculum_steps=-1", "data.curriculum_steps must not be negative"),
        ("data.manifest=pairs.csv", "data.world_version selects the generated ShapesWorld"),
        ("data.hard_negtive_group=4", "Did you mean 'data.hard_negative_group'"),
    ],
)
def test_bad_v3_config_values_exit_2(tmp_path, capsys, flag, says):
    code = main(
        ["train", "--config", str(V3_CONFIG), "--steps", "1", "--set", flag, "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.usefixtures("one_thread")
def test_a_grouped_curriculum_run_trains(world, tmp_path):
    tiny: dict[str, Any] = {
        "model": {
            "config": {
                "embed_dim": 16,
                "vision_cfg": {"image_size": 16, "layers": 1, "width": 16, "patch_size": 8, "head_width": 8},
                "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
            }
        },
        "data": {
            "manifest": str(world / "train" / "manifest.csv"),
            "hard_negative_group": 2,
            "curriculum_steps": 1,
        },
        "objective": {"distill": False},
        "optim": {"steps": 2},
        "batch_size": 4,
        "workers": 0,
        "checkpoint_every": 0,
        "export": {"name": "tiny-v3"},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert len((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()) == 2
