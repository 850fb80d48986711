"""Checks for section 1, "Inputs and outputs" (book/chapters/transformer/01-inputs-and-outputs.md).

Answers are known by construction: logits built as ``log(probs) + c`` from hand-chosen
distributions (so every log-probability is known), token counts worked out by hand for the
unigram model, and, for the residual stream, two invariants of the architecture: the pieces
sum to the final residual stream, and the final LayerNorm makes the readout blind to the
stream's scale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_decompose_residual",
    "check_logit_lens",
    "check_next_token_log_probs",
    "check_unigram_log_probs",
]

TEXT = "King.\nWhat say you, my lord? Speak, and tell me true: is it the king that comes?"


def _hand_logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits ``log(probs) + c`` [2, 4, 5] with a different constant per position, the tokens,
    and the log-probabilities of the next tokens [2, 3] read off ``probs`` by hand."""
    probs = torch.tensor([
        [[0.10, 0.60, 0.10, 0.10, 0.10], [0.05, 0.05, 0.70, 0.10, 0.10],
         [0.25, 0.25, 0.25, 0.20, 0.05], [0.20, 0.20, 0.20, 0.20, 0.20]],
        [[0.50, 0.20, 0.10, 0.10, 0.10], [0.10, 0.10, 0.10, 0.10, 0.60],
         [0.30, 0.40, 0.10, 0.10, 0.10], [0.90, 0.04, 0.03, 0.02, 0.01]],
    ])
    shift = torch.tensor([[2.0, -1.0, 0.5, 3.0], [-2.0, 1.5, 0.0, -0.5]])[..., None]
    tokens = torch.tensor([[4, 1, 2, 3], [0, 0, 4, 1]])
    # Position i predicts token i + 1: row 0 -> probs[0,0,1], probs[0,1,2], probs[0,2,3];
    # row 1 -> probs[1,0,0], probs[1,1,4], probs[1,2,1].
    want = torch.tensor([[0.60, 0.70, 0.20], [0.50, 0.60, 0.40]]).log()
    return probs.log() + shift, tokens, want


def check_next_token_log_probs(next_token_log_probs: Callable) -> None:
    logits, tokens, want = _hand_logits()
    out = call(next_token_log_probs, logits.clone(), tokens.clone(), what="(hand-made logits [2, 4, 5])")
    expect_tensor(out, "next_token_log_probs(logits [2, 4, 5], tokens [2, 4])", (2, 3), "batch, pos - 1",
                  floating=True)
    hint = ("Position i's logits predict token i + 1: take log_softmax(logits[:, :-1], dim=-1) and gather "
            "the entries of tokens[:, 1:].")
    log_p = logits.log_softmax(-1)
    same_pos = log_p[:, :-1].gather(-1, tokens[:, :-1, None])[..., 0]
    if torch.allclose(out, same_pos, atol=1e-5):
        hint = ("You read each position's own token: position i's logits are the model's guess for the *next* "
                "token, tokens[:, i + 1].")
    elif torch.allclose(out, logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0], atol=1e-5):
        hint = "These are raw logits: turn them into log-probabilities with log_softmax over the vocabulary first."
    elif torch.allclose(out, logits.softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0], atol=1e-5):
        hint = "These are probabilities: take the log (log_softmax is the stable way to get both at once)."
    elif torch.allclose(out, logits.log_softmax(1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0], atol=1e-5):
        hint = "You normalised over the position axis: the softmax runs over the vocabulary (dim=-1)."
    expect_close(out, want, "next_token_log_probs on hand-made logits", atol=1e-5, hint=hint)
    passed("next_token_log_probs: log-probability of each actual next token")


def check_unigram_log_probs(unigram_log_probs: Callable) -> None:
    stream = torch.tensor([3, 1, 1, 0, 3, 3, 5])
    # Counts over a vocabulary of 7: [1, 2, 0, 3, 0, 1, 0]; plus one each: [2, 3, 1, 4, 1, 2, 1] / 14.
    want = (torch.tensor([2.0, 3, 1, 4, 1, 2, 1]) / 14).log()
    out = call(unigram_log_probs, stream.clone(), 7, what="(stream [3, 1, 1, 0, 3, 3, 5], d_vocab 7)")
    expect_tensor(out, "unigram_log_probs(stream, d_vocab=7)", (7,), "d_vocab", floating=True)
    hint = "Count every token id (torch.bincount with minlength=d_vocab), add 1 to each count, normalise, take the log."
    if torch.isinf(out).any():
        hint = ("Some log-probabilities are -inf: tokens that never occur in the stream need a count of 1 added "
                "(add-one smoothing), or a single unseen held-out token makes the loss infinite.")
    elif abs(out.exp().sum().item() - 1) > 1e-4:
        hint = (f"Your probabilities sum to {out.exp().sum().item():.4f}: divide the smoothed counts by their own "
                "total, len(stream) + d_vocab, not by len(stream).")
    expect_close(out, want, "unigram_log_probs on a hand-counted stream", atol=1e-5, hint=hint)
    passed("unigram_log_probs: smoothed token frequencies, as log-probabilities")


def _run(model: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and every activation on two sequences (the text, and its tokens reversed after BOS)."""
    tokens = model.to_tokens(TEXT)[0]
    tokens = torch.stack([tokens, torch.cat([tokens[:1], tokens[1:].flip(0)])])
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    return logits, dict(cache.items())


def check_decompose_residual(decompose_residual: Callable, model: Any) -> None:
    _, cache = _run(model)
    n_layers = model.cfg.n_layers
    final = cache[f"blocks.{n_layers - 1}.hook_resid_post"]
    out = call(decompose_residual, cache, n_layers, what="(the cache of gpt-mini on two sequences)")
    n = 2 + 2 * n_layers
    expect_tensor(out, "decompose_residual(cache, n_layers)", (n, *final.shape), "2 + 2 * n_layers, batch, pos, "
                  "d_model", floating=True)
    total = out.sum(0)
    hint = ("The pieces are the token embedding, the position embedding, then each layer's attention output and "
            "MLP output (hook_attn_out, hook_mlp_out): what each block *adds*, not the stream after it.")
    if (total - final).norm() > 2 * final.norm():
        hint = ("Your pieces add up to far more than the stream: the resid_mid / resid_post activations are "
                "running totals, so stacking them counts every earlier piece again. Use what each block adds.")
    expect_close(total, final, f"The sum of your {n} pieces against blocks.{n_layers - 1}.hook_resid_post",
                 atol=1e-4, hint=hint)
    order = ["hook_embed", "hook_pos_embed"] + [f"blocks.{i}.hook_{part}_out" for i in range(n_layers)
                                                 for part in ("attn", "mlp")]
    for i, name in enumerate(order):
        if not torch.allclose(out[i], cache[name], atol=1e-5):
            raise CheckFailed(f"Piece {i} should be {name}; the pieces add up, but are in another order. The order is "
                              "embed, pos_embed, then attn_out and mlp_out of layer 0, of layer 1, and so on.")
    passed(f"decompose_residual: {n} pieces that sum to the final residual stream")


def check_logit_lens(logit_lens: Callable, model: Any) -> None:
    want, cache = _run(model)
    n_layers = model.cfg.n_layers
    final = cache[f"blocks.{n_layers - 1}.hook_resid_post"]
    with torch.no_grad():
        out = call(logit_lens, model, final.clone(), what="(the final residual stream)")
    expect_tensor(out, "logit_lens(model, resid [batch, pos, d_model])", (*final.shape[:2], model.cfg.d_vocab),
                  "batch, pos, d_vocab", floating=True)
    hint = ("Read the stream the way the model does: model.ln_final first, then model.unembed. On the last "
            "layer's stream that *is* the model's forward pass.")
    expect_close(out, want, "logit_lens on the final residual stream against the model's logits", atol=1e-4, hint=hint)
    mid = cache["blocks.1.hook_resid_post"]
    with torch.no_grad():
        a = call(logit_lens, model, mid.clone(), what="(layer 1's residual stream)")
        b = call(logit_lens, model, 3 * mid.clone(), what="(layer 1's residual stream, times 3)")
    expect_close(b, a, "logit_lens(model, 3 * resid) against logit_lens(model, resid)", atol=1e-3,
                 hint="The final LayerNorm divides each position by its own scale, so multiplying the stream by 3 "
                      "should change nothing. Normalise each position of the stream you are given; do not reuse "
                      "the scale of another layer.")
    passed("logit_lens: the final LayerNorm and the unembedding, on any layer's residual stream")
