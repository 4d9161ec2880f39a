"""Readers for the standard on-disk layouts. Each returns plain lists plus a fingerprint."""
