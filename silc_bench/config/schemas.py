"""The typed schema of each block of a registry entry (`checkpoints.yaml`).

The entry keeps plain mappings for the code that reads them; these classes only say what a
well-formed block is, so `preprocess: {mean: [0.5, 0.5]}` or `tokenizer: {context_length:
"40"}` is one line naming the model and the field, not a traceback or a different number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from silc_bench.core.typed import Check

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _is_sha256(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return all(isinstance(v, str) and _SHA256.match(v) for v in values)


Sha256 = Annotated[str, Check(test=_is_sha256, means="a sha256: 64 lowercase hex digits")]
Triple = Annotated[list[float], Check(length=3)]
PositiveTriple = Annotated[list[Annotated[float, Check(min=1e-12)]], Check(length=3)]
NonEmpty = Annotated[str, Check(min_length=1)]
# A context length beyond this is no text tower's (CLIP 77, SigLIP 64, long-text variants 248)
ContextLength = Annotated[int, Check(min=2, max=4096)]


def _exactly_one(raw: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    given = [k for k in keys if raw.get(k) is not None]
    return None if len(given) == 1 else f"give exactly one of {list(keys)}, found {given or 'none'}"


@dataclass
class ArchSchema:
    open_clip: NonEmpty | None = None
    config: dict[str, Any] | None = None
    converted: Literal["big_vision"] | None = None

    @staticmethod
    def validate(raw: dict[str, Any]) -> str | None:
        return _exactly_one(raw, ("open_clip", "config", "converted"))


@dataclass
class WeightsSchema:
    path: NonEmpty | Annotated[list[NonEmpty], Check(min_length=1)] | None = None
    sha256: Sha256 | Annotated[list[Sha256], Check(min_length=1)] | None = None
    url: str | None = None
    how: str | None = None
    masker: NonEmpty | None = None
    masker_sha256: Sha256 | None = None
    random_init_seed: Annotated[int, Check(min=0)] | None = None

    @staticmethod
    def validate(raw: dict[str, Any]) -> str | None:
        if raw.get("random_init_seed") is not None and raw.get("path") is not None:
            return "random_init_seed and path exclude each other"
        paths, shas = raw.get("path"), raw.get("sha256")
        if isinstance(shas, list) and not isinstance(paths, list):
            return "sha256 is a list but path is not: give one sha256 per file"
        if (
            isinstance(paths, list)
            and shas is not None
            and (not isinstance(shas, list) or len(shas) != len(paths))
        ):
            n = len(shas) if isinstance(shas, list) else 1
            return f"{len(paths)} weight files but {n} sha256: give one per file, in order"
        return None


@dataclass
class PreprocessSchema:
    size: Annotated[int, Check(min=8, max=8192)] = 224
    resize: Literal["shortest", "squash", "squash_crop"] = "shortest"
    interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    mean: Triple | None = None
    std: PositiveTriple | None = None


@dataclass
class TokenizerSchema:
    type: Literal["open_clip", "sentencepiece"] = "open_clip"
    context_length: ContextLength | None = None
    file: NonEmpty | None = None
    path: NonEmpty | None = None
    sha256: Sha256 | None = None
    clean: Literal["lower", "canonicalize", "none"] | None = None
    source: str | None = None
    pad_id: Annotated[int, Check(min=0)] | None = None
    vocab_size: Annotated[int, Check(min=1)] | None = None  # convert records the text embedding's rows


@dataclass
class VariantSchema:
    expected: dict[str, dict[str, float]] = field(default_factory=dict)
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    tolerance: dict[str, dict[str, float]] = field(default_factory=dict)
    description: str = ""


@dataclass
class PaperRowSchema:
    model: NonEmpty
    size: NonEmpty


# ---------------------------------------------------------------- dataset `data:` blocks

SplitNames = NonEmpty | Annotated[list[NonEmpty], Check(min_length=1)]


@dataclass
class _Generated:
    generated: Literal["shapesworld"] | None = None
    generated_seed: Annotated[int, Check(min=0)] | None = None

    @staticmethod
    def validate(raw: dict[str, Any]) -> str | None:
        return None if "format" in raw else "missing key ['format'] (the reader of this dataset)"


@dataclass
class ClassificationSplits:
    eval: SplitNames
    train: SplitNames | None = None


@dataclass
class ClassificationData(_Generated):
    format: Literal["imagefolder", "imagenet", "cifar100", "wds"] = "imagefolder"
    path: NonEmpty | None = None
    splits: dict[str, Any] = field(default_factory=dict, metadata={"schema": ClassificationSplits})
    train_per_class: Annotated[int, Check(min=1)] | None = None


@dataclass
class RetrievalData(_Generated):
    format: Literal["karpathy", "wds"] = "karpathy"
    path: NonEmpty | None = None
    split_file: NonEmpty | None = None
    image_dir: NonEmpty | None = None
    split: NonEmpty = "test"


@dataclass
class SegmentationPrefix:
    img_path: NonEmpty
    seg_map_path: NonEmpty


@dataclass
class SegmentationData(_Generated):
    format: Literal["mmseg"] = "mmseg"
    dataset: NonEmpty = "BaseSegDataset"
    data_root: NonEmpty = "."
    data_prefix: dict[str, Any] = field(default_factory=dict, metadata={"schema": SegmentationPrefix})
    ann_file: NonEmpty | None = None
    img_suffix: NonEmpty | None = None
    seg_map_suffix: NonEmpty | None = None
    metainfo_classes: bool = False
    reduce_zero_label: bool = False
    classes: NonEmpty | None = None
    num_classes: Annotated[int, Check(min=1)] = 1
    background: bool = False


# the `data:` schema by task type (the plugin that reads it)
DATA_SCHEMAS: dict[str, type] = {
    "zs-cls": ClassificationData,
    "fs-cls": ClassificationData,
    "retrieval": RetrievalData,
    "zs-seg": SegmentationData,
}
