"""silc-bench: evaluation suite for CLIP-like vision-language models (SILC paper protocols)."""

__version__ = "0.1.0"
