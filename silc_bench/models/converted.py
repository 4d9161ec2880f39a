"""Files written by `silc-bench convert` describe themselves: architecture (or config),
preprocessing and tokenizer live in the safetensors header. These helpers turn that into
the registry entry a run uses, and check a sentencepiece tokenizer against the text tower.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from silc_bench.config import ModelSpec
from silc_bench.convert.command import read_metadata
from silc_bench.errors import UserError


def _metadata(path: Path) -> dict[str, Any] | None:
    """The file's convert metadata, its shape checked (None: not a converted file)."""
    meta = read_metadata(path)
    if meta is None:
        return None
    if meta.get("arch") == "custom" and not isinstance(meta.get("config"), dict):
        raise UserError(f"{path}: its convert metadata names a custom architecture without a config")
    for key in ("preprocess", "tokenizer"):
        if not isinstance(meta.get(key, {}), dict):
            raise UserError(f"{path}: its convert metadata `{key}` is not a mapping")
    return meta


def with_converted_metadata(spec: ModelSpec, path: Path) -> ModelSpec:
    """A file written by `silc-bench convert` carries its preprocessing and tokenizer; they
    become this run's defaults (PROTOCOLS.md §6: a checkpoint's own preprocessing, always)."""
    meta = _metadata(path) if path.is_file() else None
    if meta is None:
        return spec
    arch = spec.arch.get("open_clip")
    if meta.get("arch") == "custom":
        raise UserError(
            f"{path} holds a custom architecture (see {path.stem}.config.json), not open_clip {arch}; "
            f"evaluate it by name after `silc-bench convert ... --register`"
        )
    if meta.get("arch") != arch:
        raise UserError(f"{path} was converted for open_clip {meta.get('arch')}, not {arch}")
    return replace(
        spec, preprocess=dict(meta.get("preprocess", {})), tokenizer=dict(meta.get("tokenizer", {}))
    )


def spec_from_converted(spec: ModelSpec, path: Path | None) -> ModelSpec:
    """`arch: {converted: big_vision}`: the architecture, preprocessing and tokenizer are the
    ones `silc-bench convert` verified and recorded in the weights file (entry keys win)."""
    if path is None:
        return spec  # _checked_files says what is missing and how to get it
    meta = _metadata(path)
    if meta is None:
        raise UserError(
            f"{path}: model {spec.name!r} takes its architecture from a file written by "
            "`silc-bench convert`, and this file has no such metadata"
        )
    arch = {"config": meta["config"]} if meta.get("arch") == "custom" else {"open_clip": meta.get("arch")}
    return replace(
        spec,
        arch=arch,
        preprocess={**meta.get("preprocess", {}), **spec.preprocess},
        tokenizer=dict(spec.tokenizer or meta.get("tokenizer", {})),
    )


def check_text_fit(spec: ModelSpec, module: torch.nn.Module, tok: dict[str, Any]) -> None:
    """A sentencepiece tokenizer must fit the text tower: ids inside its embedding, and the
    context length its position embeddings and last-token pooling were trained with."""
    if tok.get("type") != "sentencepiece":
        return
    text = getattr(module, "text", module)
    emb = getattr(text, "token_embedding", None)
    pos = getattr(text, "positional_embedding", None)
    if emb is not None and tok["vocab_size"] > emb.num_embeddings:
        raise UserError(
            f"model {spec.name!r}: tokenizer {tok['file']} has {tok['vocab_size']} pieces, but the text "
            f"tower embeds {emb.num_embeddings}; it is not this model's vocabulary"
        )
    if pos is not None and tok["context_length"] != pos.shape[0]:
        raise UserError(
            f"model {spec.name!r}: tokenizer context_length {tok['context_length']} differs from the "
            f"text tower's {pos.shape[0]} positions"
        )
