"""The layout of the transformer learners build in "A transformer from scratch", and the copy
of a TransformerLens model's weights into it.

The chapter's modules name their parameters as TransformerLens does (``W_Q`` is
``[n_heads, d_model, d_head]``, ``W_in`` is ``[d_model, d_mlp]``, ...), so one table maps every
weight. :func:`load_weights` copies the weights of one component (``"blocks.0.attn"``) or of the
whole model (``""``) into the learner's module and says exactly which name or shape differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class GPTConfig:
    """The sizes of a GPT-2-style model (the learner's modules read these)."""

    d_model: int = 256
    n_heads: int = 8
    d_head: int = 32
    d_mlp: int = 1024
    n_layers: int = 4
    n_ctx: int = 256
    d_vocab: int = 2048
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02

    @classmethod
    def from_model(cls, model: Any) -> GPTConfig:
        """The config of a TransformerLens model (for example ``load_model("gpt-mini")``)."""
        c = model.cfg
        if getattr(c, "attn_only", False) or c.d_mlp is None:
            raise ValueError("GPTConfig describes models with MLPs; this model is attention-only.")
        return cls(d_model=c.d_model, n_heads=c.n_heads, d_head=c.d_head, d_mlp=c.d_mlp,
                   n_layers=c.n_layers, n_ctx=c.n_ctx, d_vocab=c.d_vocab,
                   layer_norm_eps=float(getattr(c, "eps", 1e-5)))


def scratch_state_dict(model: Any) -> dict[str, Tensor]:
    """Every weight of ``model`` under the name the chapter's modules give it."""
    sd = model.state_dict()
    out: dict[str, Tensor] = {
        "embed.W_E": model.W_E,
        "pos_embed.W_pos": model.W_pos,
        "ln_final.w": sd["ln_final.weight"],
        "ln_final.b": sd["ln_final.bias"],
        "unembed.W_U": model.W_U,
        "unembed.b_U": model.b_U,
    }
    for layer in range(model.cfg.n_layers):
        p = f"blocks.{layer}"
        for ln in ("ln1", "ln2"):
            out[f"{p}.{ln}.w"] = sd[f"{p}.{ln}.weight"]
            out[f"{p}.{ln}.b"] = sd[f"{p}.{ln}.bias"]
        for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"):
            out[f"{p}.attn.{name}"] = getattr(model, name)[layer]
        for name in ("W_in", "b_in", "W_out", "b_out"):
            out[f"{p}.mlp.{name}"] = getattr(model, name)[layer]
    return {k: v.detach().clone().float() for k, v in out.items()}


def load_weights(module: nn.Module, model: Any, component: str = "") -> nn.Module:
    """Copy ``model``'s weights for ``component`` (``""`` for the whole model, ``"embed"``,
    ``"blocks.1"``, ``"blocks.0.attn"``, ``"ln_final"``, ...) into ``module``; returns it.

    Raises a ``ValueError`` naming the missing, unexpected or mis-shaped parameters."""
    full = scratch_state_dict(model)
    prefix = f"{component}." if component else ""
    want = {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}
    if not want:
        raise ValueError(f"No weights under {component!r}; components look like 'embed', "
                         "'pos_embed', 'blocks.0', 'blocks.0.attn', 'blocks.0.mlp', 'ln_final', 'unembed'.")
    have = dict(module.named_parameters())
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    if missing or unexpected:
        raise ValueError(
            f"{type(module).__name__} does not have the parameters of {component or 'the model'}: "
            f"missing {missing[:6]}, unexpected {unexpected[:6]}. Keep the parameter names of the "
            "exercise's __init__ (W_E, W_pos, w and b, W_Q ... b_O, W_in ... b_out, W_U and b_U).")
    for k, v in want.items():
        if tuple(have[k].shape) != tuple(v.shape):
            raise ValueError(f"Parameter {k!r} of {type(module).__name__} has shape {list(have[k].shape)}; "
                             f"the model's weight has shape {list(v.shape)}.")
    with torch.no_grad():
        for k, v in want.items():
            have[k].copy_(v.to(have[k].device, have[k].dtype))
    return module
