"""Support code for the transformer interpretability course book."""

import os as _os

__version__ = "0.1.0"

# The default profile never needs the hub. Hugging Face reads HF_HUB_OFFLINE when it is first
# imported, so set it here, before anything imports transformers (measured: without it a failed
# hub lookup retries for ~23 s before it errors). An invalid profile name is reported by
# `interpbook.profiles.current_profile()` when a model is loaded.
if _os.environ.get("INTERP_BOOK_PROFILE", "default").strip() in ("", "default"):
    _os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
