"""mmseg's image and label loading, recording the sha256 of the very bytes each decodes.

mmcv's LoadImageFromFile and mmseg's LoadAnnotations read a file and decode it, hashing
nothing; the dataset fingerprint is computed from the files at the start and the end of
the run, so a file edited while the run reads it, and put back before the end, would be
scored as edited under the original's fingerprint (and reused). These subclasses read each
file once, hash those bytes and decode them exactly as their parents do (same
`color_type`, `imdecode_backend`, `reduce_zero_label` and `label_map` handling, with the
parents' own settings); the digests travel in the data sample's metainfo and
`check_bytes_read` compares them with the fingerprint's before a result is written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations, PackSegInputs

from silc_bench.core.errors import UserError

DIGEST_KEYS = ("img_sha256", "seg_map_sha256")


def _read(path: str) -> tuple[bytes, str]:
    # what mmengine's fileio.get does for a local file (backend_args None): one read, whole
    data = Path(path).read_bytes()
    return data, hashlib.sha256(data).hexdigest()


class HashedLoadImageFromFile(LoadImageFromFile):
    """LoadImageFromFile (local files, mmcv's defaults) plus `img_sha256` of the bytes decoded."""

    def transform(self, results: dict) -> dict:
        filename = results["img_path"]
        data, results["img_sha256"] = _read(filename)
        img = mmcv.imfrombytes(data, flag=self.color_type, backend=self.imdecode_backend)
        assert img is not None, f"failed to load image: {filename}"  # mmcv's own check and words
        if self.to_float32:
            img = img.astype(np.float32)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results


class HashedLoadAnnotations(LoadAnnotations):
    """mmseg's LoadAnnotations (label maps only) plus `seg_map_sha256` of the bytes decoded."""

    def _load_seg_map(self, results: dict) -> None:
        data, results["seg_map_sha256"] = _read(results["seg_map_path"])
        gt = mmcv.imfrombytes(data, flag="unchanged", backend=self.imdecode_backend)
        gt = gt.squeeze().astype(np.uint8)
        if self.reduce_zero_label is None:
            self.reduce_zero_label = results["reduce_zero_label"]
        assert self.reduce_zero_label == results["reduce_zero_label"], "reduce_zero_label disagrees"
        if self.reduce_zero_label:  # as mmseg: 0 → 255 (ignored), the rest shift down by one
            gt[gt == 0] = 255
            gt = gt - 1
            gt[gt == 254] = 255
        if results.get("label_map", None) is not None:  # custom classes, as mmseg remaps them
            original = gt.copy()
            for old_id, new_id in results["label_map"].items():
                gt[original == old_id] = new_id
        results["gt_seg_map"] = gt
        results["seg_fields"].append("gt_seg_map")


def pack_with_digests() -> PackSegInputs:
    """PackSegInputs with its default meta keys, plus the two digests."""
    pack = PackSegInputs()
    pack.meta_keys = (*pack.meta_keys, *DIGEST_KEYS)
    return pack


def check_bytes_read(read: list[tuple[str, str]], expected: list[str]) -> None:
    """`read`: (file, sha256 of the bytes decoded), image then label map, in dataset order;
    `expected`: the digests the dataset fingerprint was computed from, in the same order.
    A difference is a file edited while the run read it, even one put back since."""
    for (path, got), want in zip(read, expected):
        if got != want:
            raise UserError(
                f"{path} changed while it was being read (its bytes are not those the dataset "
                f"fingerprint hashed): nothing cached, no result written; run again"
            )
    if len(read) > len(expected):
        raise UserError(f"{len(read)} files read, the dataset lists {len(expected)}; run again")
