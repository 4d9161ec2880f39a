"""A lazy, checked view of a big_vision two-tower `.npz` parameter tree.

big_vision saves a flattened flax tree: `img/...`, `txt/...`, `t`, `b`, sometimes under a
`params/` prefix, with the encoder blocks either per block (`encoderblock_N/...`) or scanned
(one `encoderblock/...` array per parameter with a leading layer axis). This module hides
both choices and reads one array at a time, so an SO400M file never sits in memory twice.
Every problem is a `UserError` naming the parameter: a wrong conversion costs whole points.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from silc_bench.core.errors import UserError

POOLINGS = ("map", "gap", "tok")


class NpzTree:
    """`tree[name]` → float32 array for a name without the `params/` prefix."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: file not found")
        try:
            self._zip = zipfile.ZipFile(self.path)
            names = [n[: -len(".npy")] for n in self._zip.namelist() if n.endswith(".npy")]
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise UserError(f"{self.path}: not a readable .npz file ({type(e).__name__}: {e})") from None
        if not names:
            raise UserError(f"{self.path}: the .npz holds no arrays")
        prefix = "params/" if any(n.startswith("params/") for n in names) else ""
        self.prefix = prefix
        self._names = {n[len(prefix) :]: n for n in names if n.startswith(prefix)}
        self.overrides: dict[str, np.ndarray] = {}  # e.g. a resampled position embedding
        self.used: set[str] = set()  # names the conversion read: anything else is refused

    def __contains__(self, name: object) -> bool:
        return name in self.overrides or name in self._names

    def names(self) -> list[str]:
        return sorted(self._names)

    def shape(self, name: str) -> tuple[int, ...]:
        """The array's shape from its .npy header alone (nothing else is read)."""
        if name in self.overrides:
            return tuple(self.overrides[name].shape)
        with self._open(name) as f:
            try:
                version = np.lib.format.read_magic(f)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, _ = read(f)
            except Exception as e:  # noqa: BLE001 - any unreadable header is bad input
                raise UserError(
                    f"{self.path}: cannot read {self.prefix}{name} ({type(e).__name__}: {e})"
                ) from None
        return tuple(int(s) for s in shape)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.overrides:
            return self.overrides[name]
        with self._open(name) as f:
            self.used.add(name)
            try:
                arr = np.lib.format.read_array(f, allow_pickle=False)
            except Exception as e:  # noqa: BLE001 - zlib, unsupported compression, absurd shapes: all bad input
                raise UserError(
                    f"{self.path}: cannot read {self.prefix}{name} ({type(e).__name__}: {e})"
                ) from None
        if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
            raise UserError(f"{self.path}: {self.prefix}{name} has dtype {arr.dtype}, not a number type")
        out = np.asarray(arr, dtype=np.float32)
        if not np.isfinite(out).all():
            raise UserError(f"{self.path}: {self.prefix}{name} holds NaN or infinite values")
        return out

    def _open(self, name: str):  # noqa: ANN202
        if name not in self._names:
            raise self.missing(name)
        try:
            return self._zip.open(self._names[name] + ".npy")
        except Exception as e:  # noqa: BLE001 - encrypted or otherwise unreadable member
            raise UserError(
                f"{self.path}: cannot read {self.prefix}{name} ({type(e).__name__}: {e})"
            ) from None

    def unused(self) -> list[str]:
        return sorted(set(self._names) - self.used)

    def missing(self, name: str) -> UserError:
        top = sorted({n.split("/")[0] for n in self._names})
        near = [n for n in self.names() if n.rsplit("/", 1)[0] == name.rsplit("/", 1)[0]][:6]
        found = f"keys under that path: {near}" if near else f"top-level keys found: {top}"
        return UserError(f"{self.path}: missing parameter {self.prefix}{name} ({found})")


@dataclass(frozen=True)
class Encoder:
    """Where one tower's encoder blocks live, in either layout."""

    tree: NpzTree
    prefix: str  # "img/Transformer/" or "txt/Encoder_0/"
    depth: int
    scanned: bool

    def block(self, i: int, name: str) -> np.ndarray:
        if self.scanned:
            return self.tree[f"{self.prefix}encoderblock/{name}"][i]
        return self.tree[f"{self.prefix}encoderblock_{i}/{name}"]

    def stacked(self, name: str) -> list[np.ndarray]:
        """All blocks' values of one parameter (a scanned array is read once, not per block)."""
        if self.scanned:
            arr = self.tree[f"{self.prefix}encoderblock/{name}"]
            return [arr[i] for i in range(self.depth)]
        return [self.block(i, name) for i in range(self.depth)]


def find_encoder(tree: NpzTree, prefix: str) -> Encoder:
    scanned_key = f"{prefix}encoderblock/LayerNorm_0/scale"
    if scanned_key in tree:
        return Encoder(tree, prefix, tree.shape(scanned_key)[0], True)
    pat = re.compile(re.escape(prefix) + r"encoderblock_(\d+)/")
    found = {int(m.group(1)) for n in tree.names() if (m := pat.match(n))}
    if not found:
        raise tree.missing(f"{prefix}encoderblock_0/LayerNorm_0/scale")
    depth = max(found) + 1
    if found != set(range(depth)):
        raise UserError(f"{tree.path}: {prefix} has blocks {sorted(found)}: some encoder blocks are missing")
    return Encoder(tree, prefix, depth, False)


BLOCK_PARAMS = (
    "LayerNorm_0/scale",
    "LayerNorm_0/bias",
    "MultiHeadDotProductAttention_0/query/kernel",
    "MultiHeadDotProductAttention_0/query/bias",
    "MultiHeadDotProductAttention_0/key/kernel",
    "MultiHeadDotProductAttention_0/key/bias",
    "MultiHeadDotProductAttention_0/value/kernel",
    "MultiHeadDotProductAttention_0/value/bias",
    "MultiHeadDotProductAttention_0/out/kernel",
    "MultiHeadDotProductAttention_0/out/bias",
    "LayerNorm_1/scale",
    "LayerNorm_1/bias",
    "MlpBlock_0/Dense_0/kernel",
    "MlpBlock_0/Dense_0/bias",
    "MlpBlock_0/Dense_1/kernel",
    "MlpBlock_0/Dense_1/bias",
)
