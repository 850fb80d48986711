"""Checks for section 1, "TransformerLens basics" (book/chapters/induction/01-transformerlens-basics.md)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_attention_pattern",
    "check_next_token_accuracy",
    "check_resid_post_from_parts",
]


def check_next_token_accuracy(fn: Callable) -> None:
    # 1 sequence of 5 tokens; the model's argmax is right at positions 0 and 2 of the 4 it predicts.
    tokens = torch.tensor([[3, 1, 4, 1, 5]])
    logits = torch.zeros(1, 5, 6)
    for pos, guess in enumerate([1, 2, 1, 0, 0]):  # prediction made at position `pos`
        logits[0, pos, guess] = 5.0
    acc = call(fn, logits, tokens)
    if isinstance(acc, torch.Tensor):
        acc = acc.item()
    if not isinstance(acc, float):
        raise CheckFailed(f"next_token_accuracy should return a Python float, got {type(acc).__name__}.")
    if abs(acc - 0.5) > 1e-6:
        hint = ""
        if abs(acc - 0.4) < 1e-6 or abs(acc - 0.6) < 1e-6:
            hint = (" It looks like the last position was counted: it has no next token, so compare "
                    "logits[:, :-1] with tokens[:, 1:].")
        elif abs(acc) < 1e-6:
            hint = " Did you compare each prediction with the token at the *same* position instead of the next one?"
        raise CheckFailed(f"On a hand-made example the accuracy should be 0.5 (2 of 4 predictions right), "
                          f"got {acc:.3f}.{hint}")
    batch_logits = torch.randn(3, 7, 11, generator=torch.Generator().manual_seed(0))
    batch_tokens = torch.randint(0, 11, (3, 7), generator=torch.Generator().manual_seed(1))
    acc = call(fn, batch_logits, batch_tokens)
    acc = acc.item() if isinstance(acc, torch.Tensor) else acc
    expected = (batch_logits[:, :-1].argmax(-1) == batch_tokens[:, 1:]).float().mean().item()
    if abs(acc - expected) > 1e-6:
        raise CheckFailed(f"On a batch of 3 sequences the accuracy should be {expected:.4f}, got {acc:.4f}: "
                          "average over every position of every sequence.")
    passed("next_token_accuracy is correct")


def check_resid_post_from_parts(fn: Callable, model, cache) -> None:
    for layer in range(model.cfg.n_layers):
        out = call(fn, cache, layer)
        expected = cache[f"blocks.{layer}.hook_resid_post"]
        expect_tensor(out, f"resid_post_from_parts(cache, {layer})", shape=expected.shape, dims="batch, pos, d_model")
        expect_close(out, expected, f"resid_post_from_parts(cache, {layer})", atol=1e-4,
                     hint="An attention-only block adds the attention output to the residual stream it read.")
    passed("the residual stream after each layer is the stream before it plus the attention output")


def check_attention_pattern(fn: Callable, cache) -> None:
    # Hand-made: two positions, one head, q = k = [1]: scores [[1, masked], [1, 1]] / sqrt(1).
    q = torch.ones(1, 2, 1, 1)
    k = torch.ones(1, 2, 1, 1)
    pat = call(fn, q, k)
    expect_tensor(pat, "attention_pattern(q, k)", shape=(1, 1, 2, 2), dims="batch, head, query_pos, key_pos")
    if pat[0, 0, 0, 1].abs() > 1e-6:
        raise CheckFailed("Position 0 attends to position 1 in your pattern: mask the future (keys after the "
                          "query) with -inf *before* the softmax.")
    expect_close(pat[0, 0], torch.tensor([[1.0, 0.0], [0.5, 0.5]]), "the 2-token pattern", atol=1e-5,
                 hint="Each query's row should sum to 1: fill the future scores with -inf *before* the "
                 "softmax (rather than zeroing them after it), and take the softmax over the key axis (dim=-1).")
    for layer in range(2):
        q, k = cache[f"blocks.{layer}.attn.hook_q"], cache[f"blocks.{layer}.attn.hook_k"]
        pat = call(fn, q, k)
        expected = cache[f"blocks.{layer}.attn.hook_pattern"]
        expect_tensor(pat, f"attention_pattern for layer {layer}", shape=expected.shape,
                      dims="batch, head, query_pos, key_pos")
        scale_hint = f" Did you divide the scores by sqrt(d_head) = {math.sqrt(q.shape[-1]):.2f}?"
        expect_close(pat, expected, f"your layer-{layer} pattern", atol=1e-4, hint=scale_hint)
    passed("attention_pattern reproduces the model's cached patterns")
