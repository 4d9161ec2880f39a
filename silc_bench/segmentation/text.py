"""Text queries for segmentation: class-name files with synonyms, and their embeddings.

A class-name file has one class per line; a line may list synonyms separated by commas
(SCLIP's files do), and each synonym becomes its own query, scored as the max over a
class's synonyms. Two averaging conventions exist and both are named in the profile:
`normalise-then-mean` (CLIP, SCLIP) and `mean-then-normalise` (TCL).
"""

from __future__ import annotations

import numpy as np
import torch

from silc_bench.core.errors import UserError
from silc_bench.features.cache import FeatureCache
from silc_bench.features.extract import RunOptions, text_embeddings
from silc_bench.models.adapter import VLModel

AVERAGES = ("normalise-then-mean", "mean-then-normalise")


def parse_class_lines(lines: list[str], num_classes: int, source: str) -> list[list[str]]:
    if len(lines) != num_classes:
        raise UserError(f"class-name file {source} has {len(lines)} lines for {num_classes} classes")
    out = [[s.strip() for s in ln.split(",") if s.strip()] for ln in lines]
    empty = [i for i, syn in enumerate(out) if not syn]
    if empty:
        raise UserError(f"class-name file {source}: line {empty[0] + 1} is empty")
    return out


def queries(classes: list[list[str]], first_class: int = 0) -> tuple[list[str], list[int]]:
    """Flatten synonyms: (query strings, query → class index relative to `first_class`)."""
    q, owner = [], []
    for c, syns in enumerate(classes[first_class:]):
        q += syns
        owner += [c] * len(syns)
    return q, owner


def query_embeddings(
    model: VLModel,
    names: list[str],
    templates: list[str],
    average: str,
    cache: FeatureCache,
    opts: RunOptions,
) -> torch.Tensor:
    """(Q, D) L2-normalised query embeddings."""
    if average not in AVERAGES:
        raise UserError(f"text_average must be one of {AVERAGES}, not {average!r}")
    texts = [t.replace("{c}", n) for n in names for t in templates]
    emb = text_embeddings(model, texts, cache, opts, "text", normalize=average == AVERAGES[0])
    per = torch.from_numpy(np.ascontiguousarray(emb)).reshape(len(names), len(templates), -1)
    return torch.nn.functional.normalize(per.mean(dim=1), dim=-1)
