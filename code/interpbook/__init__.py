"""Support code for the transformer interpretability course book."""

__version__ = "0.1.0"
