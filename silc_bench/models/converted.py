"""Files written by `silc-bench convert` describe themselves: architecture (or config),
preprocessing and tokenizer live in the safetensors header. These helpers turn that into
the registry entry a run uses, and check a sentencepiece tokenizer against the text tower.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from silc_bench.config import ModelSpec
from silc_bench.core.errors import UserError
from silc_bench.models.header_digest import check_digest

METADATA_KEY = "silc_bench"  # the safetensors header key convert (and the training export) write


def _metadata(path: Path) -> dict[str, Any] | None:
    """The file's convert metadata, its shape checked and its digest verified against the
    tensors (None: not a converted file)."""
    meta = read_metadata(path)
    if meta is None:
        return None
    check_digest(path, meta)
    if meta.get("arch") == "custom" and not isinstance(meta.get("config"), dict):
        raise UserError(f"{path}: its convert metadata names a custom architecture without a config")
    for key in ("preprocess", "tokenizer"):
        if not isinstance(meta.get(key, {}), dict):
            raise UserError(f"{path}: its convert metadata `{key}` is not a mapping")
    return meta


def with_converted_metadata(spec: ModelSpec, path: Path) -> ModelSpec:
    """A file written by `silc-bench convert` carries its preprocessing and tokenizer; they
    become this run's defaults (docs/protocols.md: a checkpoint's own preprocessing, always)."""
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


def check_text_fit(
    spec: ModelSpec, module: torch.nn.Module, tok: dict[str, Any], checkpoint: list[str] | None = None
) -> None:
    """A sentencepiece tokenizer must fit the text tower: exactly as many pieces as the text
    embedding has rows (big_vision's embedding is `vocab_size` rows: a smaller vocabulary is
    another tokenizer whose ids happen to fit), and the context length its position
    embeddings and last-token pooling were trained with. A file that fits is then bound to
    the checkpoint (`checkpoint`: its files' sha256) if conversion recorded no sha256."""
    if tok.get("type") != "sentencepiece":
        return
    text = getattr(module, "text", module)
    emb = getattr(text, "token_embedding", None)
    pos = getattr(text, "positional_embedding", None)
    if emb is not None and tok["vocab_size"] != emb.num_embeddings:
        raise UserError(
            f"model {spec.name!r}: tokenizer {tok['file']} has {tok['vocab_size']} pieces, but the text "
            f"tower embeds {emb.num_embeddings}; it is not this model's vocabulary"
        )
    if pos is not None and tok["context_length"] != pos.shape[0]:
        raise UserError(
            f"model {spec.name!r}: tokenizer context_length {tok['context_length']} differs from the "
            f"text tower's {pos.shape[0]} positions"
        )
    if checkpoint:
        from silc_bench.core.paths import weights_dir
        from silc_bench.models.sp_tokenizer import bind_first_use

        bind_first_use(spec.tokenizer, tok, weights_dir() / "tokenizers", checkpoint)


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The metadata `convert` wrote into a safetensors file (None for other files, exports of
    the training stack included)."""
    if Path(path).suffix != ".safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except Exception as e:  # noqa: BLE001 - any unreadable header is a corrupt file
        raise UserError(f"{path}: corrupt safetensors file ({type(e).__name__}: {e})") from None
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise UserError(f"{path}: its {METADATA_KEY} metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: its {METADATA_KEY} metadata is not a mapping")
    # The same header key holds the training stack's export record (train/export.py), which
    # is not a conversion: only a record that names what it was converted from is one.
    return meta if "converted_from" in meta else None
