"""Checks for section 1, "The task and the metric" (book/chapters/ioi/01-task-and-metric.md).

Every check builds its inputs by hand so that the right answer is known: logits that are zero
except where the answer must be read (and decoys where the usual slips would read), a small
unembedding matrix, a stack of residual-stream pieces, and attention patterns with known
weights. Real prompts from :mod:`interpbook.datasets.ioi` supply the positions, so prompts of
different lengths (and the right-padding that comes with them) are part of every test.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed
from interpbook.datasets.ioi import VOCAB, IOIDataset, make_ioi_dataset

__all__ = [
    "check_logits_to_logit_diff",
    "check_logit_diff_directions",
    "check_residual_to_logit_diff",
    "check_end_attention",
]


def _prompts(n: int = 6) -> IOIDataset:
    """Held-out prompts of several lengths (varied verb phrases), so END is not the last column."""
    ds = make_ioi_dataset(n, split="heldout", seed=3, varied_actions=True)
    assert len(set(ds.end.tolist())) > 1
    return ds


# --- logits_to_logit_diff ---------------------------------------------------------------------

def check_logits_to_logit_diff(fn: Callable) -> None:
    """``fn(logits, ds)`` is logit(IO) - logit(S) at each prompt's END position."""
    ds = _prompts()
    # One column more than the longest prompt, as if the batch had been padded with other prompts.
    n, width, d_vocab = len(ds), ds.tokens.shape[1] + 1, len(VOCAB)
    g = torch.Generator().manual_seed(0)
    io_val = torch.randn(n, generator=g) * 3 + 5
    s_val = torch.randn(n, generator=g) * 3
    logits = torch.zeros(n, width, d_vocab)
    b = torch.arange(n)
    logits[b, ds.end, ds.io_tok] = io_val
    logits[b, ds.end, ds.s_tok] = s_val
    # Decoys where the usual slips read: the last column (padding for the shorter prompts) and
    # the position before END.
    logits[:, -1, ds.io_tok] = 100.0
    logits[b, ds.end - 1, ds.s_tok] = -40.0
    expected = io_val - s_val
    out = call(fn, logits.clone(), ds, what="(hand-made logits: zero except at END)")
    out = expect_tensor(out, "the logit differences", shape=(n,), dims="batch", floating=True)
    if torch.allclose(out, -expected, atol=1e-4):
        raise CheckFailed("your logit differences have the wrong sign: the metric is logit(IO) - logit(S), "
                          "positive when the model prefers the indirect object.")
    last = logits[b, -1, ds.io_tok] - logits[b, -1, ds.s_tok]
    if torch.allclose(out, last, atol=1e-4):
        raise CheckFailed(
            "you read the logits at position -1. The prompts have different lengths and are "
            "right-padded, so the last column is padding for the shorter ones: read each prompt's "
            "logits at its own END position, `ds.end[i]`.")
    before = logits[b, ds.end - 1, ds.io_tok] - logits[b, ds.end - 1, ds.s_tok]
    if torch.allclose(out, before, atol=1e-4):
        raise CheckFailed("you read the logits one position before END. `ds.end` is the position of the "
                          "prompt's last token (\"to\"), the position whose logits predict the answer.")
    expect_close(out, expected, "logit(IO) - logit(S)", hint=(
        "For prompt i, take logits[i, ds.end[i]] and subtract its entry at ds.s_tok[i] from its entry at "
        "ds.io_tok[i]."))
    passed("logits_to_logit_diff reads each prompt at its END position")


# --- logit_diff_directions --------------------------------------------------------------------

def check_logit_diff_directions(fn: Callable) -> None:
    """``fn(W_U, ds)`` is W_U[:, IO] - W_U[:, S] for each prompt, shape [batch, d_model]."""
    ds = _prompts()
    n, d_vocab = len(ds), len(VOCAB)
    g = torch.Generator().manual_seed(1)
    for d_model in (d_vocab, 8):  # a square matrix (no shape error to help), then a rectangular one
        W_U = torch.randn(d_model, d_vocab, generator=g)
        out = call(fn, W_U.clone(), ds, what=f"(W_U of shape [{d_model}, {d_vocab}] = [d_model, d_vocab])")
        out = expect_tensor(out, "the directions", shape=(n, d_model), dims="batch d_model", floating=True)
        expected = W_U[:, ds.io_tok].T - W_U[:, ds.s_tok].T
        if torch.allclose(out, -expected, atol=1e-5):
            raise CheckFailed("your directions point the wrong way: logit(IO) - logit(S) = resid · (W_U[:, IO] "
                              "- W_U[:, S]).")
        if d_model == d_vocab and torch.allclose(out, W_U[ds.io_tok] - W_U[ds.s_tok], atol=1e-5):
            raise CheckFailed(
                "you took rows of W_U. W_U is [d_model, d_vocab]: a token's unembedding vector is a "
                "*column*, W_U[:, token].")
        expect_close(out, expected, f"the directions (W_U of shape [{d_model}, {d_vocab}])")
    passed("logit_diff_directions takes the right columns of W_U")


# --- residual_to_logit_diff -------------------------------------------------------------------

def check_residual_to_logit_diff(fn: Callable) -> None:
    """``fn(stack, directions)`` is the mean over prompts of each component's dot product with
    that prompt's own direction, shape [component]."""
    # Component 0 lies along every prompt's direction with length k+1 (contribution k+1 for
    # prompt k); component 1 is orthogonal to every direction (contribution 0); component 2 is
    # minus component 0. The directions are unit vectors that differ between prompts.
    directions = torch.eye(4)[:3] + 0.0  # [batch=3, d_model=4]
    stack = torch.zeros(3, 3, 4)
    for k in range(3):
        stack[0, k] = (k + 1) * directions[k]
        stack[1, k, 3] = 7.0
        stack[2, k] = -(k + 1) * directions[k]
    expected = torch.tensor([2.0, 0.0, -2.0])
    out = call(fn, stack.clone(), directions.clone(), what="(a hand-made stack of 3 components on 3 prompts)")
    out = expect_tensor(out, "the per-component logit differences", shape=(3,), dims="component", floating=True)
    if torch.allclose(out, expected * 3, atol=1e-5):
        raise CheckFailed("you summed over the prompts; take the mean, so the numbers are the average logit "
                          "difference each component contributes to one prompt.")
    mean_dir = (stack.mean(1) * directions.mean(0)).sum(-1)
    if torch.allclose(out, mean_dir, atol=1e-5) and not torch.allclose(mean_dir, expected):
        raise CheckFailed(
            "you averaged the residual pieces and the directions separately before the dot product. Each "
            "prompt has its own direction (its own IO and S): take the dot product per prompt, then average.")
    expect_close(out, expected, "the per-component logit differences", hint=(
        "stack is [component, batch, d_model] and directions [batch, d_model]: multiply, sum over d_model, "
        "then average over the batch."))
    passed("residual_to_logit_diff projects each prompt on its own direction")


# --- end_attention ----------------------------------------------------------------------------

def check_end_attention(fn: Callable) -> None:
    """``fn(pattern, end, key_pos)`` is the mean over prompts of the attention from END to
    ``key_pos``, for each head: shape [head]."""
    end = torch.tensor([3, 5, 4])
    key_pos = torch.tensor([1, 2, 2])
    n_pos, n_heads = 7, 2  # END is never the last position, as with padding
    pattern = torch.zeros(3, n_heads, n_pos, n_pos)
    wanted = torch.tensor([[0.5, 0.1], [0.7, 0.3], [0.9, 0.2]])  # [batch, head] at (END, key_pos)
    for i in range(3):
        for h in range(n_heads):
            pattern[i, h, end[i], key_pos[i]] = wanted[i, h]
            pattern[i, h, key_pos[i], end[i]] = 0.95  # the transposed entry
            pattern[i, h, n_pos - 1, key_pos[i]] = 0.05  # what position -1 would give
    expected = wanted.mean(0)
    out = call(fn, pattern.clone(), end.clone(), key_pos.clone(), what="(a hand-made [3, 2, 7, 7] pattern)")
    out = expect_tensor(out, "the attention per head", shape=(n_heads,), dims="head", floating=True)
    b = torch.arange(3)
    if torch.allclose(out, pattern[b, :, key_pos, end].mean(0), atol=1e-5):
        raise CheckFailed("you read attention *from* key_pos *to* END. A pattern is [batch, head, query, key]: "
                          "the query (END) comes first, the key second.")
    if torch.allclose(out, pattern[b, :, -1, key_pos].mean(0), atol=1e-5):
        raise CheckFailed("you used the last position as the query. Prompts are right-padded: use each "
                          "prompt's `end[i]`.")
    expect_close(out, expected, "the mean attention from END to key_pos", hint=(
        "Index pattern[i, :, end[i], key_pos[i]] for every prompt i at once with an arange over the batch, "
        "then average over prompts."))
    passed("end_attention reads the END row at each prompt's key position")
