"""Image–caption pairs for training: a manifest (CSV/JSONL) or WebDataset-style tar shards.

Everything is checked when the data is opened, before the model is built: a missing image
or an empty caption names its row (or shard and key), so a bad row fails in seconds rather
than hours into a run. Shards are indexed once (member names and captions) and then read
by random access, so both sources are plain map-style datasets that a DistributedSampler
can split; an epoch's order depends only on (seed, epoch), and a sample's crops only on
(seed, epoch, index), which is what makes resuming exact.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from silc_bench.core.errors import UserError
from silc_bench.train.augment import MultiCrop, sample_generator
from silc_bench.train.config import DataConfig

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True)
class Pair:
    image: str  # a file path, or a member name inside `shard`
    caption: str
    shard: str | None = None
    # optional manifest columns for grouped batches (ShapesWorld v3, data/shapesworld_v3.py)
    group: int | None = None  # scenes of a group are each other's hard negatives
    kind: int | None = None  # the caption's kind: a group in a batch gets one kind
    objects: int | None = None  # objects in the scene, for the single-object curriculum


def manifest_path(text: str, world_version: int | None = None) -> Path:
    """A manifest path; `shapesworld:` names a file of the generated ShapesWorld set, which is
    generated into the cache on first use (so committed configs need no machine-specific path).
    `world_version` 3 (`data.world_version`) names the v3 training world instead of v2's."""
    if text.startswith("shapesworld:"):
        from silc_bench.core.paths import cache_root

        if world_version == 3:
            from silc_bench.data.shapesworld_v3 import ensure_train

            return ensure_train(cache_root() / "datasets") / text.split(":", 1)[1]
        from silc_bench.data.shapesworld import ensure

        return ensure(cache_root() / "datasets") / text.split(":", 1)[1]
    return Path(text)


def _optional_int(row: dict[str, Any], column: str, path: Path, line: int) -> int | None:
    value = row.get(column)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(
            f"{path} line {line}: column {column} must be a whole number, found {value!r}"
        ) from None


def read_manifest(path: Path) -> list[Pair]:
    """Rows of (image, caption); image paths are relative to the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.manifest: file not found: {path}")
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            rows = [(i + 2, row) for i, row in enumerate(reader)]  # line 1 is the header
    elif path.suffix == ".jsonl":
        rows, fields = [], ["image", "caption"]
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path} line {i}: invalid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise UserError(f"{path} line {i}: expected an object with image and caption")
                rows.append((i, row))
    else:
        raise UserError(f"data.manifest: {path} must be a .csv or .jsonl file")
    missing = [c for c in ("image", "caption") if c not in fields]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}; a manifest needs columns image, caption")
    pairs = []
    for line, row in rows:
        image, caption = row.get("image"), row.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            raise UserError(f"{path} line {line}: empty caption (image {image!r})")
        if not isinstance(image, str) or not image.strip():
            raise UserError(f"{path} line {line}: empty image path")
        file = (path.parent / image).resolve()
        if not file.is_file():
            raise UserError(f"{path} line {line}: image not found: {file}")
        extra = {c: _optional_int(row, c, path, line) for c in ("group", "kind", "objects")}
        pairs.append(Pair(str(file), caption.strip(), **extra))
    if not pairs:
        raise UserError(f"{path}: the manifest has no rows")
    return pairs


def _split_key(name: str) -> tuple[str, str]:
    """WebDataset naming: the key is the path up to the first dot of the base name."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def index_shards(pattern: str) -> list[Pair]:
    """Every (image, caption) pair in the tars matching `pattern`, in sorted shard order."""
    shards = sorted(glob.glob(pattern))
    if not shards:
        raise UserError(f"data.shards: no files match {pattern!r}")
    pairs = []
    for shard in shards:
        samples: dict[str, dict[str, Any]] = {}
        try:
            with tarfile.open(shard) as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    key, ext = _split_key(member.name)
                    entry = samples.setdefault(key, {})
                    if ext == "txt":
                        entry["txt"] = tar.extractfile(member).read().decode("utf-8", "replace")
                    elif ext in IMAGE_EXTS:
                        entry["image"] = member.name
        except tarfile.TarError as e:
            raise UserError(f"data.shards: {shard} is not a readable tar ({e})") from None
        for key, entry in samples.items():
            if "txt" not in entry and "image" not in entry:
                continue  # other sidecar files (json, cls) only
            if "image" not in entry:
                raise UserError(
                    f"{shard}: sample {key!r} has a caption but no image ({'/'.join(IMAGE_EXTS)})"
                )
            caption = entry.get("txt", "")
            if not caption.strip():
                raise UserError(f"{shard}: sample {key!r} has an empty or missing caption ({key}.txt)")
            pairs.append(Pair(entry["image"], caption.strip(), shard))
    if not pairs:
        raise UserError(
            f"data.shards: no image-caption samples in {len(shards)} shard(s) matching {pattern!r}"
        )
    return pairs


class PairDataset(torch.utils.data.Dataset):
    """Indexed by (epoch, index): returns the caption and the sample's multi-crop views."""

    def __init__(self, pairs: list[Pair], crops: MultiCrop, seed: int) -> None:
        self.pairs = pairs
        self.crops = crops
        self.seed = seed
        self._tars: dict[str, tarfile.TarFile] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def __getstate__(self) -> dict[str, Any]:  # open tar handles stay in their process
        return {**self.__dict__, "_tars": {}}

    def _open(self, pair: Pair) -> Image.Image:
        try:
            if pair.shard is None:
                return Image.open(pair.image).convert("RGB")
            tar = self._tars.get(pair.shard) or self._tars.setdefault(pair.shard, tarfile.open(pair.shard))
            return Image.open(io.BytesIO(tar.extractfile(pair.image).read())).convert("RGB")
        except (OSError, tarfile.TarError) as e:
            where = f"{pair.shard}:{pair.image}" if pair.shard else pair.image
            raise UserError(f"cannot read training image {where} ({e})") from None

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        pair = self.pairs[index]
        globals_, locals_ = self.crops(self._open(pair), sample_generator(self.seed, epoch, index))
        size = self.crops.local_size
        return {
            "index": index,
            "caption": pair.caption,
            "globals": torch.stack(globals_),
            "locals": torch.stack(locals_) if locals_ else torch.empty(0, 3, size, size),
        }


def epoch_batches(n: int, batch_size: int, world: int, rank: int, seed: int, epoch: int) -> list[list[int]]:
    """This process's full batches for one epoch (DistributedSampler order, last partial dropped)."""
    sampler = DistributedSampler(
        range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def micro_batches(
    dataset: PairDataset,
    batch_size: int,
    world: int,
    rank: int,
    workers: int,
    start: int,
    groups: GroupSampling | None = None,
) -> Iterator[dict[str, Any]]:
    """Endless micro-batches from global micro-batch number `start` on (for resuming mid-epoch);
    with `groups`, each batch is made of whole groups (`grouped_batch`)."""
    if groups is not None:
        yield from _grouped_micro_batches(dataset, batch_size, rank, workers, start, groups)
        return
    per_epoch = len(epoch_batches(len(dataset), batch_size, world, rank, dataset.seed, 0))
    if per_epoch == 0:
        raise UserError(
            f"the training data has {len(dataset)} pairs: too few for one batch of {batch_size} "
            f"on each of {world} process(es); lower batch_size or add data"
        )
    epoch, skip = divmod(start, per_epoch)
    while True:
        plan = epoch_batches(len(dataset), batch_size, world, rank, dataset.seed, epoch)[skip:]
        loader = DataLoader(
            dataset,
            batch_sampler=[[(epoch, i) for i in b] for b in plan],
            num_workers=workers,
            generator=torch.Generator().manual_seed(0),  # leave the global RNG untouched
        )
        yield from loader
        epoch, skip = epoch + 1, 0


# ---------------------------------------------------------------- grouped batches (ShapesWorld v3)

GROUPED_CHUNK = 100  # micro-batches per DataLoader (its workers restart between chunks)


@dataclass(frozen=True)
class GroupSampling:
    """Batches of whole groups: `size` scenes of each group (one caption kind per group), and
    the first `single_object_batches` micro-batches from single-object groups only."""

    size: int = 1
    single_object_batches: int = 0


def group_sampling(data: DataConfig, grad_accum: int = 1) -> GroupSampling | None:
    """The config's grouped sampling, or None for plain shuffled pairs (v2's order, unchanged)."""
    k, steps = data.hard_negative_group or 1, data.curriculum_steps or 0
    if k == 1 and steps == 0:
        return None
    return GroupSampling(k, steps * grad_accum)


@dataclass(frozen=True)
class Group:
    objects: int | None  # None when its scenes differ in object count, or the column is missing
    scenes: tuple[dict[int, int], ...]  # per scene: caption kind → row index
    kinds: tuple[int, ...]  # the kinds every scene of the group has


def index_groups(pairs: list[Pair], size: int) -> list[Group]:
    """The groups with at least `size` scenes, in group-id order. A row without a kind counts
    as kind j for the j-th caption of its image."""
    by_group: dict[int, dict[str, dict[int, int]]] = {}
    for i, p in enumerate(pairs):
        if p.group is None:
            raise UserError(
                f"grouped batches (data.hard_negative_group / data.curriculum_steps) need a group "
                f"column in the manifest; training row {i + 1} ({p.image}) has none"
            )
        rows = by_group.setdefault(p.group, {}).setdefault(p.image, {})
        rows.setdefault(len(rows) if p.kind is None else p.kind, i)
    groups = []
    for gid in sorted(by_group):
        scenes = tuple(by_group[gid].values())
        kinds = tuple(sorted(set.intersection(*(set(s) for s in scenes))))
        counts = {pairs[next(iter(s.values()))].objects for s in scenes}
        if len(scenes) >= size and kinds:
            groups.append(Group(counts.pop() if len(counts) == 1 else None, scenes, kinds))
    return groups


def grouped_batch(
    pools: tuple[list[Group], list[Group]],
    sampling: GroupSampling,
    batch_size: int,
    seed: int,
    number: int,
    rank: int,
) -> list[int]:
    """Row indices of micro-batch `number` on `rank`: batch_size / size distinct groups, `size`
    distinct scenes of each, one caption kind per group (so no two of its captions are the
    same text). Depends only on (seed, number, rank), which makes resuming exact."""
    everything, single = pools
    pool = single if number < sampling.single_object_batches else everything
    rng = np.random.default_rng([seed, number, rank])
    rows = []
    for g in rng.choice(len(pool), size=batch_size // sampling.size, replace=False):
        group = pool[int(g)]
        kind = group.kinds[int(rng.integers(len(group.kinds)))]
        rows += [
            group.scenes[int(j)][kind]
            for j in rng.choice(len(group.scenes), size=sampling.size, replace=False)
        ]
    return rows


def _grouped_micro_batches(
    dataset: PairDataset, batch_size: int, rank: int, workers: int, start: int, sampling: GroupSampling
) -> Iterator[dict[str, Any]]:
    everything = index_groups(dataset.pairs, sampling.size)
    single = [g for g in everything if g.objects == 1]
    need = batch_size // sampling.size
    for name, pool, used in (
        ("", everything, True),
        ("single-object ", single, sampling.single_object_batches > 0),
    ):
        if used and len(pool) < need:
            raise UserError(
                f"the training data has {len(pool)} {name}groups of at least {sampling.size} scenes: too "
                f"few for a batch of {batch_size} ({need} groups); lower batch_size or "
                "data.hard_negative_group, or add data"
            )
    number = start
    while True:
        plan = [
            [(b, i) for i in grouped_batch((everything, single), sampling, batch_size, dataset.seed, b, rank)]
            for b in range(number, number + GROUPED_CHUNK)
        ]
        loader = DataLoader(
            dataset,
            batch_sampler=plan,
            num_workers=workers,
            generator=torch.Generator().manual_seed(0),
        )
        yield from loader
        number += GROUPED_CHUNK
