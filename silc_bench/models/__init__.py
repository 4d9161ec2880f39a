"""Model loading behind one adapter: `load_model(ref) -> VLModel`."""

from silc_bench.models.adapter import VLModel
from silc_bench.models.resolve import ModelRef, list_models, load_model, parse_model_ref

__all__ = ["ModelRef", "VLModel", "list_models", "load_model", "parse_model_ref"]
