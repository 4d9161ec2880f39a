"""Checkpoint conversion: big_vision two-tower `.npz` → a verified open_clip safetensors file."""
