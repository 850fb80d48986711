"""Profiles: which models a chapter runs on.

`default` runs anywhere: offline, on a CPU, with the book-trained checkpoints shipped in this
package. `full` selects the real hub models, for runners with network access and a GPU.

The profile is one setting, the environment variable ``INTERP_BOOK_PROFILE``; chapter code
never names a profile.
"""

from __future__ import annotations

import os

PROFILE_ENV = "INTERP_BOOK_PROFILE"
PROFILES: dict[str, str] = {
    "default": "offline, CPU: book-trained checkpoints shipped with the `interpbook` package",
    "full": "hub models (needs network access; a GPU is recommended)",
}


class UnknownProfileError(ValueError):
    pass


def validate_profile(name: str, source: str = "argument") -> str:
    if name not in PROFILES:
        valid = ", ".join(sorted(PROFILES))
        raise UnknownProfileError(f"Unknown profile {name!r} (from {source}). Valid profiles: {valid}.")
    return name


def current_profile() -> str:
    """The active profile, validated. Reading it also applies the profile's environment."""
    name = validate_profile(os.environ.get(PROFILE_ENV, "default").strip() or "default", f"${PROFILE_ENV}")
    if name == "default":
        # Without this a failed hub lookup retries for ~23 s before it errors; the default
        # profile never needs the hub, so fail fast instead.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return name


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
