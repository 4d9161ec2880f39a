"""The two text canonicalisation rules, side by side: they are different steps upstream too.

- `canonicalize` is big_vision's prompt rule (`canonicalize_text` in its zero-shot prompt
  engineering code, Python): '_' → space, `string.punctuation` removed (except an exact
  `keep` string, such as the `{c}` placeholder), lowercase with Python's `str.lower` (every
  Unicode letter), whitespace collapsed. It builds prompts and, under the big_vision
  profile, cleans retrieval captions.
- `tokenizer_clean` is what a SigLIP-style tokenizer does to any text it is given:
  big_vision's tokenizer op lowercases with `tf.strings.lower`, whose default touches ASCII
  only, so "É" stays "É" there while `canonicalize` makes it "é". The `canonicalize` rule of
  the tokenizer is open_clip's SigLIP cleaning (punctuation dropped too, then the same
  ASCII lowercase).

Both live in one module below the model and feature code, so each user imports the rule
it means and a reader sees why there are two.
"""

from __future__ import annotations

import re
import string

TOKENIZER_RULES = ("lower", "canonicalize", "none")
_PUNCT_RE = re.compile(f"[{re.escape(string.punctuation)}]")
_PUNCT_TABLE = str.maketrans("", "", string.punctuation)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # tf.strings.lower's default


def canonicalize(text: str, keep: str | None = None) -> str:
    """big_vision's prompt rule (see the module docstring)."""
    text = text.replace("_", " ")
    parts = text.split(keep) if keep else [text]
    text = (keep or "").join(_PUNCT_RE.sub("", part) for part in parts)
    return " ".join(text.lower().split())


def tokenizer_clean(text: str, rule: str) -> str:
    """A SigLIP tokenizer's own cleaning: `lower` (ASCII lowercase, whitespace collapsed),
    `canonicalize` (open_clip's: '_' → space and punctuation dropped first), or `none`."""
    if rule == "none":
        return text
    if rule == "canonicalize":
        text = text.replace("_", " ").translate(_PUNCT_TABLE)
    return " ".join(text.translate(_ASCII_LOWER).split())
