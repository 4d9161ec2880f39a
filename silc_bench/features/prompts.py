"""Class-name and template assets, prompt filling, and zero-shot classifier weights
(the canonicalisation rules themselves are in models/text_rules.py).

The classifier follows CLIP / open_clip / CLIP_benchmark: encode every template filled
with the class name, L2-normalise each embedding, average, L2-normalise again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from silc_bench.core.errors import UserError
from silc_bench.core.hashing import hash_obj
from silc_bench.core.paths import ASSETS
from silc_bench.features.cache import FeatureCache
from silc_bench.features.extract import RunOptions, text_embeddings
from silc_bench.models.adapter import VLModel
from silc_bench.models.text_rules import canonicalize


def asset_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (ASSETS / kind).glob("*.txt"))


def read_asset(kind: str, name: str) -> list[str]:
    """Lines of `assets/<kind>/<name>.txt` (kind: classnames or templates)."""
    path = ASSETS / kind / f"{name}.txt"
    if not path.is_file():
        from silc_bench.core.errors import did_you_mean

        raise did_you_mean(f"{kind} file", name, asset_names(kind))
    return [ln.rstrip("\n") for ln in path.read_text().splitlines() if ln.strip()]


def canonical_prompt(template: str, classname: str) -> str:
    """big_vision's zero-shot prompt: the template canonicalised keeping its placeholder, the
    class name canonicalised keeping ',' and cut to its first alias, then substituted."""
    name = canonicalize(classname, keep=",").split(",")[0].strip()
    return canonicalize(template, keep="{c}").replace("{c}", name)


@dataclass(frozen=True)
class Prompts:
    """The exact strings that decide the classifier, and their provenance for the result."""

    classnames: list[str]
    templates: list[str]
    classnames_source: str
    templates_source: str
    canonicalize: bool = False

    def record(self) -> dict:
        return {
            "classnames": self.classnames_source,
            "classnames_sha256": hash_obj(self.classnames),
            "templates": self.templates_source,
            "templates_sha256": hash_obj(self.templates),
            "num_templates": len(self.templates),
            "canonicalize_text": self.canonicalize,
        }

    def texts(self) -> list[str]:
        """Class-major list: all templates of class 0, then class 1, ..."""
        if self.canonicalize:
            return [canonical_prompt(t, c) for c in self.classnames for t in self.templates]
        return [t.replace("{c}", c) for c in self.classnames for t in self.templates]


def resolve_prompts(
    classnames: str,
    templates: str,
    dataset_classnames: list[str] | None,
    dataset_templates: list[str] | None,
    num_classes: int,
    canonical: bool,
    bare: bool,
) -> Prompts:
    """`classnames`/`templates` name an asset, or `dataset` for what the dataset ships."""
    if classnames == "dataset":
        if dataset_classnames is None:
            raise UserError("protocol classnames: dataset, but the dataset ships no class names")
        names, csrc = dataset_classnames, "dataset"
    else:
        names, csrc = read_asset("classnames", classnames), f"asset:{classnames}"
    if len(names) != num_classes:
        raise UserError(f"class names ({csrc}) list {len(names)} names for {num_classes} classes")
    if templates == "dataset" and dataset_templates is not None:
        tmpl, tsrc = dataset_templates, "dataset"
    else:
        name = "imagenet" if templates == "dataset" else templates
        tmpl, tsrc = read_asset("templates", name), f"asset:{name}"
    if bare and "{c}" not in tmpl:
        tmpl = [*tmpl, "{c}"]
        tsrc += "+bare"
    return Prompts(list(names), list(tmpl), csrc, tsrc, canonical)


def classifier_weights(
    model: VLModel, prompts: Prompts, cache: FeatureCache, opts: RunOptions
) -> torch.Tensor:
    """(D, C) float32: per class, mean of normalised template embeddings, renormalised."""
    emb = text_embeddings(model, prompts.texts(), cache, opts, "text")
    c, t = len(prompts.classnames), len(prompts.templates)
    per_class = torch.from_numpy(np.ascontiguousarray(emb)).reshape(c, t, -1)
    w = torch.nn.functional.normalize(per_class.mean(dim=1), dim=-1)
    return w.T.contiguous()
