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

One run reads each shard's bytes once. A run reads a split twice (for the fingerprint before
any model loads, for the data when it runs), so a shard's index is kept by the sha256 of its
content, taken through the memo the fingerprint uses (which then reads nothing more); a new
shard is hashed once, and its index costs one 512-byte header per member plus the small
`cls`/`txt` members, read in the same pass and kept, so labels and captions need no reads.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from silc_bench.core.errors import UserError, first_line

IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")
ROOT_FILES = ("classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt")
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext


@dataclass(frozen=True)
class Member:
    """One tar member's bytes: picklable, so loader workers read it themselves."""

    shard: Path
    offset: int
    size: int
    name: str
    data: bytes | None = None  # the bytes, for the small members read with the index
    digest: str = ""  # sha256 of an image member's bytes, taken when the shard was indexed

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
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


# A member as the index keeps it.
_Entry = tuple[str, int, int, str, bytes | None, str]  # ext, offset, size, name, data, sha256
SMALL_EXTS = ("cls", "txt")  # read with the index: every run reads all of them anyway
# Each shard's samples by the sha256 of its content: exact for any path holding those bytes.
_INDEX: dict[str, list[list[_Entry]]] = {}


def samples(paths: list[Path]) -> list[dict[str, Member]]:
    """Every sample of the shards, in order: {extension: member}. A shard must be a plain
    (uncompressed) tar that ends with its end-of-archive blocks: one cut at a member
    boundary would otherwise read as a shorter, valid shard and lose samples silently."""
    from silc_bench.core.hashing import sha256_many

    before = [_identity(p) for p in paths]
    digests = sha256_many(paths)  # the memo's, or one read each; the fingerprint reuses them
    out: list[dict[str, Member]] = []
    for shard, digest, seen in zip(paths, digests, before):
        found = _INDEX.get(digest)
        if found is None:
            found = _index(shard)
            if _identity(shard) != seen:  # the index must be of the bytes that were hashed
                raise UserError(f"{shard}: changed while it was read; run again once it is written")
            _INDEX[digest] = found
        out += [{e[0]: Member(shard, *e[1:]) for e in sample} for sample in found]
    return out


def _identity(path: Path) -> tuple[int, int, int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


def _index(shard: Path) -> list[list[_Entry]]:
    """One shard's samples, from one unbuffered open: every member is read once, the small
    ones kept (labels, captions), the images hashed (the loader checks what it decodes)."""
    out: list[list[_Entry]] = []
    try:
        with open(shard, "rb", buffering=0) as f:
            _check_plain(shard, os.pread(f.fileno(), 6, 0))
            with tarfile.open(fileobj=f, mode="r:") as tar:
                key, exts = None, set()
                for m in tar:
                    if not m.isfile():
                        continue
                    hit = _KEY.match(m.name)
                    if hit is None:
                        continue
                    k, ext = hit.group(1), hit.group(2).lower()
                    if k != key:
                        out.append([])
                        key, exts = k, set()
                    if ext in exts:  # webdataset refuses it too ("duplicate file name in tar file")
                        raise UserError(f"{shard}: sample {k} holds two {ext!r} members")
                    exts.add(ext)
                    data = tar.extractfile(m).read()
                    # An image's sha256, so the loader can check that the bytes it decodes
                    # are those indexed (a shard rewritten mid-run, even restored since, must
                    # not put its features in the cache under the original's fingerprint).
                    digest = hashlib.sha256(data).hexdigest() if ext not in SMALL_EXTS else ""
                    keep = data if ext in SMALL_EXTS else None
                    out[-1].append((ext, m.offset_data, m.size, m.name, keep, digest))
            _check_whole(shard, f.fileno())
    except (tarfile.TarError, OSError) as e:
        raise UserError(f"{shard}: not a readable tar shard ({first_line(e)})") from None
    return out


def _check_plain(shard: Path, head: bytes) -> None:
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        raise UserError(f"{shard}: a compressed shard; CLIP_benchmark's layout uses plain .tar files")


def _check_whole(shard: Path, fd: int) -> None:
    size = os.fstat(fd).st_size
    tail = os.pread(fd, 1024, max(0, size - 1024))
    if size < 1024 or size % 512 or tail.strip(b"\0"):
        raise UserError(f"{shard}: truncated (no end-of-archive blocks); download or write it again")


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
    """Every line of a metadata file, stripped, blank ones included (None: no such file):
    CLIP_benchmark reads them so (`[l.strip() for l in text.splitlines()]`), and a class is
    its line number, so dropping a blank line would shift every class after it."""
    if not path.is_file():
        return None
    try:
        return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None


def classnames(base: Path) -> list[str] | None:
    """classnames.txt as CLIP_benchmark reads it; a blank name is kept (it is a class to
    CLIP_benchmark too, prompted as an empty name) and said."""
    from silc_bench.core.console import warn

    found = lines(base / "classnames.txt")
    blank = [i for i, c in enumerate(found or []) if not c]
    if found and blank:
        warn(f"{base / 'classnames.txt'}: line(s) {', '.join(str(i + 1) for i in blank[:5])} are blank: "
             "classes with an empty name, as CLIP_benchmark reads them")  # fmt: skip
    return found


def templates(base: Path) -> list[str] | None:
    """zeroshot_classification_templates.txt: every template names the class with `{c}`
    (one without it gives every class the same prompt); absent or empty: None."""
    found = lines(base / "zeroshot_classification_templates.txt")
    if not found:
        return None
    if "" in found:  # CLIP_benchmark would prompt every class with the empty string
        where = base / "zeroshot_classification_templates.txt"
        raise UserError(f"{where}: line {found.index('') + 1} is blank; every template needs '{{c}}'")
    bad = [t for t in found if "{c}" not in t]
    if bad:
        where = base / "zeroshot_classification_templates.txt"
        raise UserError(f"{where}: every template needs '{{c}}' for the class name, not {bad[0]!r}")
    return found


def read_image(member: Member):  # noqa: ANN201 - a PIL image
    import io

    from silc_bench.data.images import open_image

    return open_image(io.BytesIO(member.read_bytes()))


def locate(path: str, root: Path, splits: list[str]) -> Path:
    """The dataset folder: `PATH` on disk (absolute, or under --data-root), else `ORG/NAME`
    as a Hugging Face dataset repository (`clip-benchmark/wds_vtab-cifar100`), fetched into
    the Hub cache, only the splits this task reads, every file checked against its ETag
    (data/wds_hub.py); offline, the cache."""
    from silc_bench.data.wds_hub import fetch, hub_repo

    repo = hub_repo(path, root)
    local = Path(path).expanduser()
    local = local if local.is_absolute() else root / local
    if repo is not None:
        try:
            return fetch(repo, splits, ROOT_FILES)
        except UserError as e:  # it may have meant a folder: say where that was looked for
            raise UserError(f"{e}; nor is there a folder {local} (--data-root {root})") from None
    if not local.is_dir():
        raise UserError(f"wds: dataset folder not found: {local}")
    return local
