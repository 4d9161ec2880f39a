"""The SigLIP / big_vision text rule: a sentencepiece model, lowercased text, EOS kept even
when the text is truncated ("sticky"), padded to the full context length.

big_vision's `tokenize(max_len=64, eos="sticky", pad_value=1)` with the `c4_en` vocabulary
pads with id 1, which is that vocabulary's EOS; a model trained on another vocabulary pads
with its own EOS. Nothing is downloaded: the `.model` file must be on disk, and a missing
one is one clear error that says which file and where to put it.
"""

from __future__ import annotations

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

    def __init__(self, model_file: Path, context_length: int, clean: str = "lower") -> None:
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
        self.pad = self.eos
        self.context_length = int(context_length)
        self.clean = clean
        self.vocab_size = int(self.sp.get_piece_size())

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


SP_KEYS = {"type", "file", "path", "sha256", "source", "context_length", "clean", "vocab_size"}


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


def load_tokenizer(cfg: dict[str, Any], model: str, search_dir: Path) -> tuple[SentencePieceTokenizer, dict]:
    from silc_bench.core.hashing import file_sha256

    path = tokenizer_file(cfg, model, search_dir)
    sha = file_sha256(path)
    if cfg.get("sha256") and sha != cfg["sha256"]:
        raise UserError(
            f"{path}: sha256 mismatch for model {model!r}'s tokenizer: "
            f"expected {cfg['sha256']}, found {sha}; "
            "a different vocabulary would tokenize every prompt differently"
        )
    if not cfg.get("context_length"):
        raise UserError(f"model {model!r}: a sentencepiece tokenizer needs context_length")
    tok = SentencePieceTokenizer(path, int(cfg["context_length"]), str(cfg.get("clean", "lower")))
    if cfg.get("vocab_size") and int(cfg["vocab_size"]) != tok.vocab_size:
        raise UserError(f"{path}: {tok.vocab_size} pieces, but model {model!r} expects {cfg['vocab_size']}")
    return tok, {"type": "sentencepiece", "file": str(path), "sha256": sha, **tok.describe()}
