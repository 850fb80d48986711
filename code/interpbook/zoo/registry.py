"""One function loads every model the book uses: :func:`load_model`.

Each logical model name maps to a book-trained checkpoint (default profile) and, where a hub
model plays the same role, to that hub model (full profile). Chapter code calls
``load_model("attn-only-2l")`` and never names a profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from interpbook.profiles import current_profile, default_device, validate_profile


class HubLoadError(RuntimeError):
    """A full-profile hub model could not be loaded (usually: no network, no cache)."""


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    # Loads the book-trained checkpoint (default profile).
    load_default: Callable[[str], torch.nn.Module]
    # Loads the hub model that plays the same role (full profile); None if there is none.
    load_full: Callable[[str], torch.nn.Module] | None = None
    hub_name: str | None = None
    # Module whose `train()` regenerates the checkpoint.
    trainer: str | None = None


_SPECS: dict[str, ModelSpec] = {}
# Modules that define models; each calls `register` at import time.
_MODEL_MODULES = (
    "interpbook.zoo.attn_only",
    "interpbook.zoo.ioi",
    "interpbook.zoo.brackets",
    "interpbook.zoo.modular_addition",
    "interpbook.zoo.gpt_mini",
    "interpbook.zoo.gpt_mini_sae",
    "interpbook.zoo.othello",
    "interpbook.zoo.icl_tasks",
)
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    _SPECS[spec.name] = spec
    return spec


def _ensure_registered() -> None:
    global _loaded
    if not _loaded:
        import importlib

        for mod in _MODEL_MODULES:
            importlib.import_module(mod)
        _loaded = True


def model_names() -> list[str]:
    _ensure_registered()
    return sorted(_SPECS)


def spec(name: str) -> ModelSpec:
    _ensure_registered()
    if name not in _SPECS:
        raise UnknownModelError(
            f"Unknown model {name!r}. Models in the zoo: {', '.join(sorted(_SPECS))}."
        )
    return _SPECS[name]


def load_model(name: str, device: str | None = None, profile: str | None = None,
               shipped: bool = False) -> torch.nn.Module:
    """Load model ``name`` for the active profile (or ``profile``), in eval mode on ``device``.

    ``shipped=True`` loads the book-trained checkpoint under every profile: for pages whose
    data only that model reads (its own tokenizer, a book-specific task) and for the model
    cards, which describe the shipped file."""
    s = spec(name)
    prof = validate_profile(profile, "the profile argument") if profile is not None else current_profile()
    if shipped:
        prof = "default"
    dev = device or default_device()
    if uses_hub(name, prof):
        try:
            model = s.load_full(dev)
        except Exception as e:  # hub, network and cache errors come in many types
            raise HubLoadError(
                f"Could not load the hub model {s.hub_name!r} that stands in for {name!r} under the "
                f"`full` profile ({type(e).__name__}: {str(e)[:300]}). The full profile needs network "
                "access or a warm Hugging Face cache; offline, use the default profile "
                "(unset INTERP_BOOK_PROFILE)."
            ) from e
    else:
        model = s.load_default(dev)
    model.eval()
    from interpbook.book import note_model

    note_model(name, model_source(name, prof))
    return model


def uses_hub(name: str, profile: str | None = None) -> bool:
    """Whether ``load_model(name)`` loads a hub stand-in under ``profile`` (default: the active
    one): only under `full`, and only for models that have one."""
    return (profile or current_profile()) == "full" and spec(name).load_full is not None


def model_source(name: str, profile: str | None = None) -> str:
    """Where ``load_model(name)`` gets its weights under the active profile, for page footers."""
    if uses_hub(name, profile):
        return f"{spec(name).hub_name} (hub)"
    return f"book-trained checkpoint `{name}`"
