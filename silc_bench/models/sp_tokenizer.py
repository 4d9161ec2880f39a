"""The SigLIP / big_vision text rule: a sentencepiece model, lowercased text, EOS kept even
when the text is truncated ("sticky"), padded to the full context length.

Padding: big_vision's `tokenize(max_len=64, eos="sticky", pad_value=1)` with the `c4_en`
vocabulary pads with id 1, which is that vocabulary's EOS; Gemma-vocabulary models
(SigLIP 2, PaliGemma) pad with the PAD piece, id 0. `convert` records the id it chose as
`pad_id` (convert/tokenizer_meta.py has the rule); a record without one (files converted
before the rule) pads with EOS, as every earlier run did.

The file is a side file found by name, so it is bound to the checkpoint: its sha256 is the
one recorded at conversion, or, if none was, the one first used with this checkpoint
(a small record under `tokenizers/bindings/`); another file is refused. Nothing is
downloaded: a missing file is one clear error that says which file and where to put it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from silc_bench.core.errors import UserError, first_line
from silc_bench.models.text_rules import TOKENIZER_RULES, tokenizer_clean

# big_vision's KNOWN_TOKENIZERS: the files its SigLIP-style English models use.
KNOWN_VOCABS = {
    32000: ("c4_en.model", "gs://t5-data/vocabs/cc_en.32000/sentencepiece.model (big_vision's c4_en)"),
}
CLEAN = TOKENIZER_RULES


class SentencePieceTokenizer:
    """Callable like open_clip's tokenizers: list of texts → (N, context_length) int64."""

    def __init__(
        self, model_file: Path, context_length: int, clean: str = "lower", pad_id: int | None = None
    ) -> None:
        import sentencepiece

        if clean not in CLEAN:
            raise UserError(f"tokenizer clean rule must be one of {', '.join(CLEAN)}, not {clean!r}")
        try:
            self.sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        except (OSError, RuntimeError) as e:
            raise UserError(f"{model_file}: not a sentencepiece model ({first_line(e)})") from None
        self.eos = int(self.sp.eos_id())
        if self.eos < 0:
            raise UserError(f"{model_file}: the sentencepiece model defines no EOS piece")
        self.vocab_size = int(self.sp.get_piece_size())
        if pad_id is not None and not 0 <= int(pad_id) < self.vocab_size:
            raise UserError(f"{model_file}: pad_id {pad_id} is not one of its {self.vocab_size} piece ids")
        self.pad = self.eos if pad_id is None else int(pad_id)  # no record: EOS, as before pad_id
        self.context_length = int(context_length)
        self.clean = clean

    def __call__(self, texts: list[str] | str) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        L = self.context_length
        out = torch.full((len(texts), L), self.pad, dtype=torch.long)
        for i, ids in enumerate(self.sp.encode([tokenizer_clean(t, self.clean) for t in texts])):
            ids = list(ids)[: L - 1] + [self.eos]  # sticky EOS: kept when truncating
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "class": "SentencePieceTokenizer",
            "context_length": self.context_length,
            "clean": self.clean,
            "eos_id": self.eos,
            "pad_id": self.pad,
            "eos": "sticky",
            "vocab_size": self.vocab_size,
        }


def expected_file(vocab: int) -> tuple[str, str]:
    """(file name, where it comes from) for a vocabulary size."""
    return KNOWN_VOCABS.get(
        vocab, ("tokenizer.model", "the sentencepiece model the checkpoint was trained with")
    )


SP_KEYS = {"type", "file", "path", "sha256", "source", "context_length", "clean", "vocab_size", "pad_id"}


def tokenizer_file(cfg: dict[str, Any], model: str, search_dir: Path) -> Path:
    """Where the sentencepiece file is: `path` if it exists, else `search_dir/file`; a
    missing one is a UserError naming the file, where it comes from and where to put it."""
    unknown = set(cfg) - SP_KEYS
    if unknown:
        raise UserError(f"model {model!r}: unknown sentencepiece tokenizer key(s) {sorted(unknown)}")
    file = str(cfg.get("file") or "tokenizer.model")
    candidates = [Path(cfg["path"]).expanduser()] if cfg.get("path") else []
    candidates.append(search_dir / file)
    for c in candidates:
        if c.is_file():
            return c
    source = cfg.get("source") or "the sentencepiece model the checkpoint was trained with"
    raise UserError(
        f"model {model!r} needs its sentencepiece tokenizer {file} ({source}), which is not on this machine; "
        f"put it at {search_dir / file}, or re-run `silc-bench convert ... --tokenizer PATH`"
    )


def _binding_file(search_dir: Path, checkpoint: list[str] | None) -> Path | None:
    """The first-use record for this checkpoint (None: no checkpoint files to bind to)."""
    if not checkpoint:
        return None
    from silc_bench.core.hashing import hash_obj

    key = checkpoint[0] if len(checkpoint) == 1 else hash_obj(list(checkpoint))
    return search_dir / "bindings" / f"{key}.json"


def _bound_sha(record: Path | None) -> str | None:
    if record is None or not record.is_file():
        return None
    try:
        sha = json.loads(record.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        raise UserError(f"{record}: unreadable tokenizer binding record; delete it to bind again") from None
    if not isinstance(sha, str) or len(sha) != 64:
        raise UserError(f"{record}: tokenizer binding record without a sha256; delete it to bind again")
    return sha


def verified_file(
    cfg: dict[str, Any], model: str, search_dir: Path, checkpoint: list[str] | None = None
) -> tuple[Path, str]:
    """(path, sha256) of the tokenizer file, checked against the sha256 recorded at
    conversion, else against the one first used with this checkpoint. Called when the
    run's identity is computed, so a wrong file stops the run before anything is said about
    replacing a stored result."""
    from silc_bench.core.hashing import file_sha256

    path = tokenizer_file(cfg, model, search_dir)
    sha = file_sha256(path)
    if cfg.get("sha256"):
        if sha != cfg["sha256"]:
            raise UserError(
                f"{path}: sha256 mismatch for model {model!r}'s tokenizer: expected {cfg['sha256']}, found "
                f"{sha}; a different vocabulary would tokenize every prompt differently; nothing was run"
            )
        return path, sha
    record = _binding_file(search_dir, checkpoint)
    bound = _bound_sha(record)
    if bound is not None and bound != sha:
        raise UserError(
            f"{path}: sha256 {sha[:12]}... is not the tokenizer first used with model {model!r}'s "
            f"checkpoint ({bound[:12]}..., recorded in {record}); put that file back, or delete the record "
            "if this one is the checkpoint's own vocabulary"
        )
    return path, sha


def bind_first_use(
    cfg: dict[str, Any], info: dict[str, Any], search_dir: Path, checkpoint: list[str]
) -> None:
    """Record the tokenizer a checkpoint is first run with (after its vocabulary size was
    checked against the text embedding), when conversion recorded no sha256."""
    if cfg.get("sha256") or info.get("type") != "sentencepiece":
        return
    record = _binding_file(search_dir, checkpoint)
    if record is None or _bound_sha(record) is not None:
        return
    from silc_bench.core.console import warn
    from silc_bench.core.files import atomic_write_text

    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps({"file": info["file"], "sha256": info["sha256"]}, indent=1))
    except OSError as e:
        warn(f"cannot record the tokenizer bound to this checkpoint in {record} ({first_line(e)})")
        return
    warn(f"{info['file']}: bound to this checkpoint on first use (sha256 {info['sha256'][:12]}..., {record})")


def load_tokenizer(
    cfg: dict[str, Any], model: str, search_dir: Path, checkpoint: list[str] | None = None
) -> tuple[SentencePieceTokenizer, dict]:
    path, sha = verified_file(cfg, model, search_dir, checkpoint)
    if not cfg.get("context_length"):
        raise UserError(f"model {model!r}: a sentencepiece tokenizer needs context_length")
    pad = cfg.get("pad_id")
    tok = SentencePieceTokenizer(
        path, int(cfg["context_length"]), str(cfg.get("clean", "lower")), None if pad is None else int(pad)
    )
    if cfg.get("vocab_size") and int(cfg["vocab_size"]) != tok.vocab_size:
        raise UserError(f"{path}: {tok.vocab_size} pieces, but model {model!r} expects {cfg['vocab_size']}")
    return tok, {"type": "sentencepiece", "file": str(path), "sha256": sha, **tok.describe()}
