"""Karpathy-split caption datasets (COCO 5k test, Flickr30k 1k test).

The split file lists images with `split`, `filename` (and for COCO `filepath`) and
`sentences[].raw`. Every caption of every test image is kept (COCO: 25,010), in file
order, which fixes the caption indices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np

from silc_bench.core.errors import UserError
from silc_bench.core.hashing import files_fingerprint, hash_obj
from silc_bench.core.typed import Check, validate
from silc_bench.data.classification import ImageSplit
from silc_bench.data.images import open_image


@dataclass
class CaptionData:
    images: ImageSplit
    captions: list[str]
    text_to_image: np.ndarray

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hash_obj([self.images.fingerprint, self.captions])

    def head(self, n: int | None) -> CaptionData:
        """The first n images and their captions (for --limit)."""
        if n is None or n >= len(self.images):
            return self
        keep = self.text_to_image < n
        return CaptionData(
            self.images.head(n), [c for c, k in zip(self.captions, keep) if k], self.text_to_image[keep]
        )


def read_karpathy(data_cfg: dict[str, Any], data_root: Path) -> CaptionData:
    from silc_bench.data.generated import resolve_root

    cfg, data_root = resolve_root(data_cfg, data_root)
    fmt = cfg.pop("format")
    if fmt == "wds":
        return _read_wds(cfg, Path(data_root))
    if fmt != "karpathy":
        raise UserError("retrieval datasets use `format: karpathy` or `format: wds`")
    base = Path(data_root) / cfg["path"]
    split_file = base / cfg["split_file"]
    image_dir = cfg["image_dir"]
    split = cfg.get("split", "test")
    if not split_file.is_file():
        raise UserError(
            f"retrieval: expected the Karpathy split file {split_file} (and images under {base / image_dir}/)"
        )
    try:
        meta = json.loads(split_file.read_text())
        entries = [e for e in meta["images"] if e.get("split") == split]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(
            f"{split_file}: not a Karpathy split file "
            f"(expected {{'images': [{{'split', 'filename', 'sentences'}}]}}): {e}"
        ) from None
    if not entries:
        raise UserError(f"{split_file}: no images with split == {split!r}")
    paths: list[Path] = []
    captions: list[str] = []
    owner: list[int] = []
    for i, e in enumerate(entries):
        validate(e, KarpathyImage, f"{split_file}: images[{i}] ({split})")
        folder = e.get("filepath") or image_dir
        paths.append(base / folder / e["filename"])
        sents = [s["raw"].strip() for s in e["sentences"]]
        if not sents:
            raise UserError(f"{split_file}: image {e['filename']} has no captions")
        captions += sents
        owner += [i] * len(sents)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(
            f"retrieval: {len(missing)} of {len(paths)} images listed in {split_file.name} "
            f"are missing, e.g. {missing[0]}"
        )
    digests: list[str] = []
    fp = files_fingerprint(base, paths, full=[split_file], digests=digests)
    images = ImageSplit(split, paths, np.arange(len(paths)), open_image, fp, str, digests)
    return CaptionData(images, captions, np.asarray(owner, dtype=np.int64))


@dataclass
class KarpathySentence:
    """A caption of the Karpathy split file; only `raw` is read (the tokens are the split
    authors', not the tokenizer's). Other keys are the publisher's and are left alone."""

    OPEN: ClassVar[bool] = True
    raw: str
    tokens: list[str] | None = None
    imgid: int | None = None
    sentid: int | None = None


@dataclass
class KarpathyImage:
    OPEN: ClassVar[bool] = True
    filename: Annotated[str, Check(min_length=1)]
    sentences: list[KarpathySentence]
    split: str
    filepath: str | None = None
    imgid: int | None = None
    sentids: list[int] | None = None
    cocoid: int | None = None


def _read_wds(cfg: dict[str, Any], root: Path) -> CaptionData:
    """CLIP_benchmark's WebDataset retrieval layout: each sample's `txt` holds its captions,
    one a line (`str.splitlines`, as CLIP_benchmark reads them)."""
    from silc_bench.data import wds

    split = cfg.get("split", "test")
    base = wds.locate(cfg["path"], root, [split])
    shard_files = wds.shards(base, split)
    found = wds.samples(shard_files)
    if not found or any("txt" not in s for s in found):
        raise UserError(f"wds {base}/{split}: every sample needs a `txt` member (captions, one a line)")
    images = [wds.image_of(s, f"wds {base}/{split}") for s in found]
    captions: list[str] = []
    owner: list[int] = []
    for i, s in enumerate(found):
        try:
            sents = s["txt"].read_bytes().decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise UserError(f"wds {base}/{split}: captions {s['txt'].name} are not UTF-8 text") from None
        if not sents:
            raise UserError(f"wds {base}/{split}: sample {s['txt'].name} has no captions")
        captions += sents
        owner += [i] * len(sents)
    meta = [p for p in (base / "dataset_type.txt",) if p.is_file()]
    fp = files_fingerprint(base, shard_files, full=meta)
    digests = [m.digest for m in images]  # the loader checks the bytes it decodes against them
    split_obj = ImageSplit(split, images, np.arange(len(images)), wds.read_image, fp, str, digests)
    return CaptionData(split_obj, captions, np.asarray(owner, dtype=np.int64))
