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

import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from silc_bench.core.errors import UserError
from silc_bench.train.augment import MultiCrop, sample_generator

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True)
class Pair:
    image: str  # a file path, or a member name inside `shard`
    caption: str
    shard: str | None = None


def manifest_path(text: str) -> Path:
    """A manifest path; `shapesworld:` names a file of the generated ShapesWorld set, which is
    generated into the cache on first use (so committed configs need no machine-specific path)."""
    if text.startswith("shapesworld:"):
        from silc_bench.core.paths import cache_root
        from silc_bench.data.shapesworld import ensure

        return ensure(cache_root() / "datasets") / text.split(":", 1)[1]
    return Path(text)


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
        pairs.append(Pair(str(file), caption.strip()))
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
    dataset: PairDataset, batch_size: int, world: int, rank: int, workers: int, start: int
) -> Iterator[dict[str, Any]]:
    """Endless micro-batches from global micro-batch number `start` on (for resuming mid-epoch)."""
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
