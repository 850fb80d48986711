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
