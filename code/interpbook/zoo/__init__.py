"""The model zoo: book-trained checkpoints (default profile) and hub models (full profile)."""

from interpbook.zoo.registry import ModelSpec, UnknownModelError, load_model, model_names, spec

__all__ = ["ModelSpec", "UnknownModelError", "load_model", "model_names", "spec"]
