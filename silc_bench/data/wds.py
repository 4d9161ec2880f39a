"""CLIP_benchmark's WebDataset layout, read as it is (`--dataset wds:PATH`).

    PATH/{train,test}/nshards.txt, PATH/{train,test}/{0..N-1}.tar
    PATH/classnames.txt, PATH/zeroshot_classification_templates.txt, PATH/dataset_type.txt

A sample is the run of consecutive tar members that share a key (webdataset's rule: the
member name up to the first '.' of its base name); its image is the first of `webp`, `png`,
`jpg`, `jpeg` it holds, its label `cls` (classification) or its captions `txt`, one a line
(retrieval). Shards are read in order, members in tar order: the order CLIP_benchmark's
`build_wds_dataset` streams them.

Our own reader, not the `webdataset` library: a sample is addressed by (shard, offset,
size), so DataLoader workers read only the bytes of the images they decode, in any order,
and the split is the same fixed list every run; streaming through `webdataset` would
decode in one pass only. Its parity with CLIP_benchmark's reader is a test
(`tests/test_wds.py`). The fingerprint hashes every shard and metadata file whole.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from silc_bench.core.errors import UserError

IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext


@dataclass(frozen=True)
class Member:
    """One tar member's bytes: picklable, so loader workers read it themselves."""

    shard: Path
    offset: int
    size: int
    name: str

    def read_bytes(self) -> bytes:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            return f.read(self.size)

    def __str__(self) -> str:
        return f"{self.shard}:{self.name}"


def shards(base: Path, split: str) -> list[Path]:
    """The split's shard files, as `nshards.txt` names them (`0.tar` … `N-1.tar`)."""
    count = base / split / "nshards.txt"
    if not count.is_file():
        raise UserError(f"wds {base}: expected {count} (CLIP_benchmark's WebDataset layout)")
    try:
        n = int(count.read_text().strip())
    except ValueError:
        raise UserError(f"{count}: not a number of shards") from None
    found = [base / split / f"{i}.tar" for i in range(n)]
    missing = [p for p in found if not p.is_file()]
    if n < 1 or missing:
        gone = missing[0] if missing else "all"
        raise UserError(f"wds {base}/{split}: nshards.txt says {n}, missing {gone}")
    return found


def samples(paths: list[Path]) -> list[dict[str, Member]]:
    """Every sample of the shards, in order: {extension: member}."""
    out: list[dict[str, Member]] = []
    for shard in paths:
        try:
            with tarfile.open(shard) as tar:
                key = None
                for m in tar:
                    if not m.isfile():
                        continue
                    hit = _KEY.match(m.name)
                    if hit is None:
                        continue
                    k, ext = hit.group(1), hit.group(2).lower()
                    if k != key:
                        out.append({})
                        key = k
                    out[-1][ext] = Member(shard, m.offset_data, m.size, m.name)
        except (tarfile.TarError, OSError) as e:
            raise UserError(f"{shard}: not a readable tar shard ({e})") from None
    return out


def image_of(sample: dict[str, Member], shard_note: str) -> Member:
    for ext in IMAGE_EXTS:
        if ext in sample:
            return sample[ext]
    raise UserError(f"{shard_note}: sample {next(iter(sample.values())).name} has no webp/png/jpg/jpeg image")


def labels(members: list[Member]) -> np.ndarray:
    try:
        return np.asarray([int(m.read_bytes().decode().strip()) for m in members], dtype=np.int64)
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"wds: a `cls` member is not an integer label (e.g. {members[0]})") from None


def dataset_type(base: Path) -> str:
    f = base / "dataset_type.txt"
    return f.read_text().strip().lower() if f.is_file() else "classification"


def lines(path: Path) -> list[str] | None:
    return [ln.strip() for ln in path.read_text().splitlines()] if path.is_file() else None


def read_image(member: Member):  # noqa: ANN201 - a PIL image
    import io

    from silc_bench.data.images import open_image

    return open_image(io.BytesIO(member.read_bytes()))


_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def locate(path: str, root: Path, splits: list[str]) -> Path:
    """The dataset folder: `PATH` on disk (absolute, or under --data-root), else `ORG/NAME`
    as a Hugging Face dataset repository (`clip-benchmark/wds_cifar100`), fetched into the
    Hub cache through huggingface_hub, only the splits this task reads; offline, the cache."""
    local = Path(path).expanduser()
    local = local if local.is_absolute() else root / local
    if local.is_dir() or not _HUB_NAME.match(path):
        if not local.is_dir():
            raise UserError(f"wds: dataset folder not found: {local}")
        return local
    return _from_hub(path, splits)


def _from_hub(repo: str, splits: list[str]) -> Path:
    import os

    from huggingface_hub import snapshot_download

    from silc_bench.core.errors import first_line
    from silc_bench.core.paths import hub_cache
    from silc_bench.models.hub_fetch import offline

    patterns = ["*.txt", *(f"{s}/*" for s in splits)]
    try:
        folder = snapshot_download(
            repo, repo_type="dataset", allow_patterns=patterns, cache_dir=str(hub_cache()),
            endpoint=os.environ.get("HF_ENDPOINT"), local_files_only=offline(),
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - not found, offline and not cached, a network failure
        how = f"{type(e).__name__}: {first_line(e)[:200]}"
        how = "not in the local Hub cache, offline" if offline() else how
        raise UserError(f"wds:{repo}: cannot get the Hub dataset {repo} ({how})") from None
    return Path(folder)
