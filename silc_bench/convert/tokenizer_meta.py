"""The tokenizer record `convert` writes: which sentencepiece file, its sha256, and the pad id.

The text embedding of a big_vision tower has exactly `vocab_size` rows, so a tokenizer
given with `--tokenizer` must have exactly that many pieces (fewer is another vocabulary
whose ids merely fit). The record always carries `vocab_size` (the embedding's rows): a
file supplied later, at run time, is held to the same number.

Pad id (`--pad-id`), recorded as `pad_id`:
- a number: that id;
- `eos` / `pad`: the sentencepiece model's EOS / PAD piece (needs `--tokenizer`);
- `auto` (default): with `--tokenizer`, the PAD piece when the model defines both a PAD
  and a BOS piece (the Gemma layout: pad 0, eos 1, bos 2; SigLIP 2 and PaliGemma pad with 0),
  else EOS (the T5 layout of c4_en / mc4, which has no BOS: big_vision's `pad_value=1`).
  Without `--tokenizer` nothing is recorded and runs pad with EOS, as files converted
  before `pad_id` do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from silc_bench.convert.layout import TwoTower
from silc_bench.core.errors import UserError
from silc_bench.core.hashing import file_sha256

PAD_CHOICES = ("auto", "eos", "pad")


def parse_pad(text: str | None) -> str | int:
    """`--pad-id` text → 'auto' | 'eos' | 'pad' | a non-negative id."""
    if text is None:
        return "auto"
    if text in PAD_CHOICES:
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise UserError(f"--pad-id {text!r}: give auto, eos, pad or a non-negative token id")
    return value


def _resolve_pad(sp: Any, rule: str | int, path: Path) -> tuple[int, str]:
    """(pad id, why) for a loaded sentencepiece processor."""
    eos, pad, bos = int(sp.eos_id()), int(sp.pad_id()), int(sp.bos_id())
    if isinstance(rule, int):
        return rule, "--pad-id"
    if rule == "pad" or (rule == "auto" and pad >= 0 and bos >= 0):
        if pad < 0:
            raise UserError(f"--pad-id pad: {path} defines no PAD piece")
        why = "--pad-id pad" if rule == "pad" else "auto: PAD and BOS pieces (Gemma layout)"
        return pad, why
    why = "--pad-id eos" if rule == "eos" else "auto: no BOS piece (T5/c4 layout, big_vision pad_value=EOS)"
    return eos, why


def tokenizer_meta(path: Path | None, spec: TwoTower, pad: str | int, notes: list[str]) -> dict[str, Any]:
    """The `tokenizer` block of the convert record (checked before anything is converted)."""
    from silc_bench.models.sp_tokenizer import SentencePieceTokenizer, expected_file

    file, source = expected_file(spec.vocab)
    meta: dict[str, Any] = {
        "type": "sentencepiece",
        "context_length": spec.context_length,
        "clean": "lower",
        "file": file,
        "source": source,
        "vocab_size": spec.vocab,
    }
    if path is None:
        if isinstance(pad, int):
            if pad >= spec.vocab:
                raise UserError(f"--pad-id {pad}: the text tower embeds only {spec.vocab} ids")
            meta["pad_id"] = pad
        elif pad != "auto":
            raise UserError(f"--pad-id {pad}: needs --tokenizer to know which id that is; give the id")
        notes.append(
            f"no --tokenizer given: the file is written; runs will need the sentencepiece model "
            f"{file} ({source}) with exactly {spec.vocab} pieces, bound to this checkpoint on first use; "
            + (f"padded with id {pad}" if isinstance(pad, int) else "padded with its EOS (or --pad-id N)")
        )
        return meta
    path = path.expanduser().resolve()
    if not path.is_file():
        raise UserError(f"--tokenizer: file not found: {path}")
    tok = SentencePieceTokenizer(path, spec.context_length)
    if tok.vocab_size != spec.vocab:
        raise UserError(
            f"--tokenizer {path}: {tok.vocab_size} pieces, but the text tower embeds exactly {spec.vocab}; "
            "this is not the checkpoint's vocabulary"
        )
    pad_id, why = _resolve_pad(tok.sp, pad, path)
    if not 0 <= pad_id < spec.vocab:
        raise UserError(f"--pad-id {pad_id}: the text tower embeds only {spec.vocab} ids")
    notes.append(f"tokenizer {path.name}: pads with id {pad_id} ({why}), EOS {tok.eos}")
    meta.update(file=path.name, path=str(path), sha256=file_sha256(path, fresh=True), pad_id=pad_id)
    return meta
