"""Helpers a chapter page calls: quoting computed numbers in prose, and stating where the page's
outputs came from."""

from __future__ import annotations

import platform
from typing import Any

from interpbook.profiles import current_profile

_LOADED: list[tuple[str, str]] = []


def note_model(name: str, source: str) -> None:
    if (name, source) not in _LOADED:
        _LOADED.append((name, source))


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value`` for ``{glue:text}`name``` in the page's prose (myst-nb's glue when the
    book is built; a no-op in Colab or Jupyter, where myst-nb may be missing)."""
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return
    _glue(name, value, display=display)


def model_origin(name: str) -> str:
    """A phrase for prose saying where ``load_model(name)``'s weights came from under the active
    profile, e.g. "a model this book trained in 18 minutes on one CPU core". Pages call this
    instead of branching on the profile themselves."""
    from interpbook.zoo.checkpoints import load_metrics
    from interpbook.zoo.registry import spec, uses_hub

    if uses_hub(name):
        return f"the hub model `{spec(name).hub_name}`"
    metrics = load_metrics(name)
    seconds = metrics.get("train_seconds", metrics.get("training_seconds"))
    device = str(metrics.get("device", metrics.get("training_device", "cpu")))
    where = "on one CPU core" if device == "cpu" else f"on {device}"
    if seconds is None:
        return f"a model this book trained {where}"
    return f"a model this book trained in {seconds / 60:.0f} minutes {where}"


def provenance() -> Any:
    """An HTML note: profile, models and hardware the page's outputs were computed with."""
    import torch
    from IPython.display import HTML

    models = ", ".join(f"<code>{n}</code> ({s})" for n, s in _LOADED) or "none"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()})"
    return HTML(
        f'<p class="provenance">Outputs on this page were computed under the '
        f"<code>{current_profile()}</code> profile with models: {models}; "
        f"torch {torch.__version__} on {device}.</p>"
    )
