"""Build TransformerLens (4.x) native models from a config dict, and load book checkpoints.

Book-trained models are TransformerLens-native architectures booted with
``TransformerBridge.boot_native``: no hub call, the same hook names, weight properties
(``W_Q``, ``OV``, ...) and helpers that hub models have.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from interpbook.zoo import checkpoints


def build_native(config: dict[str, Any], tokenizer: Any = None, device: str | torch.device = "cpu"):
    """A freshly initialised native model (``config['seed']`` fixes the initialisation)."""
    from transformer_lens import TransformerBridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TransformerBridge.boot_native(dict(config), tokenizer=tokenizer, device=device)
    return model


def hf_tokenizer(tokenizer_json: str):
    """Wrap a `tokenizers` JSON tokenizer so TransformerLens's to_tokens/to_string work on it."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_json),
        bos_token="<|bos|>",
        eos_token="<|bos|>",
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        # TransformerLens re-creates tokenizers that do not add BOS themselves (by hub name);
        # ours has no hub name, so it must add BOS itself.
        add_bos_token=True,
        name_or_path=str(tokenizer_json),
    )
    return tok


def load_native_checkpoint(name: str, device: str | torch.device = "cpu"):
    """Load the shipped checkpoint ``name`` into a native model on ``device``."""
    config = checkpoints.load_config(name)
    tok_path = checkpoints.checkpoint_dir(name) / "tokenizer.json"
    tokenizer = hf_tokenizer(str(tok_path)) if tok_path.exists() else None
    model = build_native(config, tokenizer=tokenizer, device=device)
    state = checkpoints.load_state_dict(name, device=device)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"Checkpoint {name!r} does not match its config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}. Regenerate it with `interpbook train {name}`."
        )
    return model
