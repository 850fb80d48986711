"""Checks for section 2, "Finding induction heads"
(book/chapters/induction/02-finding-induction-heads.md).

Every check builds inputs whose right answer is known by construction (an attention pattern in
which one head attends exactly to the previous token, a sequence whose second half repeats its
first) and compares the learner's function with that answer, so a check never re-runs the
solution it is checking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_current_token_scores",
    "check_first_token_scores",
    "check_generate_repeated_tokens",
    "check_induction_scores",
    "check_prev_token_scores",
]

_HEAD_NAMES = ("current-token", "previous-token", "first-token (BOS)", "uniform")


def _one_hot_rows(targets: list[int], n: int) -> torch.Tensor:
    """[q, k] pattern in which query q attends only to key targets[q]."""
    out = torch.zeros(n, n)
    out[torch.arange(n), torch.tensor(targets)] = 1.0
    return out


def _uniform_causal(n: int) -> torch.Tensor:
    """[q, k] pattern in which query q spreads its attention evenly over keys 0..q."""
    mask = torch.tril(torch.ones(n, n))
    return mask / mask.sum(-1, keepdim=True)


def _simple_heads(n: int = 6) -> torch.Tensor:
    """[head=4, q, k]: a current-token, a previous-token, a BOS and a uniform head.

    At query 0 every head can only attend to position 0, as in a real model."""
    current = torch.eye(n)
    previous = _one_hot_rows([max(q - 1, 0) for q in range(n)], n)
    first = _one_hot_rows([0] * n, n)
    return torch.stack([current, previous, first, _uniform_causal(n)])


def _uniform_score_on(keys: Callable[[int], int | None], qs: range) -> float:
    """The mean attention a uniform causal head gives from each query in ``qs`` to key
    ``keys(q)`` (each such key gets 1/(q+1))."""
    vals = [1.0 / (q + 1) if keys(q) is not None else 0.0 for q in qs]
    return sum(vals) / len(vals)


def _batch(heads: torch.Tensor) -> torch.Tensor:
    """[batch=2, head, q, k]: the heads, then the same heads in reverse order, so a score that
    forgets to average over the batch comes out wrong."""
    return torch.stack([heads, heads.flip(0)])


def _check_simple_detector(fn: Callable, what: str, per_head: list[float], hint_q0: str) -> None:
    n = 6
    heads = _simple_heads(n)
    pattern = _batch(heads)
    n_heads = heads.shape[0]
    name = getattr(fn, "__name__", "your function")
    out = call(fn, pattern.clone())
    expect_tensor(out, f"{name}(pattern) for a pattern of shape [batch=2, head=4, q={n}, k={n}]",
                  shape=(n_heads,), dims="head", floating=True)
    expected_one = torch.tensor(per_head)
    expected = (expected_one + expected_one.flip(0)) / 2
    # Compare the single-sequence case first: its failure message is easier to read.
    single = call(fn, heads[None].clone())
    expect_tensor(single, f"{name}(pattern) for a pattern of shape [batch=1, head=4, q={n}, k={n}]",
                  shape=(n_heads,), dims="head", floating=True)
    if not torch.allclose(single.float(), expected_one, atol=1e-4):
        rows = "; ".join(f"{h} head: yours {single[i].item():.3f}, expected {expected_one[i].item():.3f}"
                         for i, h in enumerate(_HEAD_NAMES))
        raise CheckFailed(
            f"{name} on four hand-made heads (a current-token, a previous-token, a first-token "
            f"and a uniform head, {n} positions) should score each head by its mean attention to "
            f"the {what}. {rows}. {hint_q0}"
        )
    expect_close(out.float(), expected, f"{name} on a batch of two sequences (the second with the "
                 "heads in reverse order)", hint="Average over the batch axis as well as over the "
                 "query positions; the result has one number per head.")


def check_current_token_scores(fn: Callable) -> None:
    """``fn(pattern: [batch, head, q, k]) -> [head]``: mean attention of each query (q >= 1) to
    itself."""
    n = 6
    qs = range(1, n)
    per_head = [1.0, 0.0, 0.0, _uniform_score_on(lambda q: q, qs)]
    _check_simple_detector(
        fn, "current token (key = query)", per_head,
        "Take the diagonal pattern[..., q, q] and average it over the batch and over query "
        "positions 1 onwards (query 0 has nothing but itself to attend to, so leave it out: "
        "with it, the first-token head would score above 0).",
    )
    passed("current_token_scores finds the head that attends to the current token")


def check_prev_token_scores(fn: Callable) -> None:
    """``fn(pattern: [batch, head, q, k]) -> [head]``: mean attention of each query (q >= 1) to
    the key just before it."""
    n = 6
    qs = range(1, n)
    per_head = [0.0, 1.0, 1.0 / (n - 1), _uniform_score_on(lambda q: q - 1, qs)]
    _check_simple_detector(
        fn, "previous token (key = query - 1)", per_head,
        "Take pattern[..., q, q - 1] for q = 1 .. seq-1 (the stripe just below the diagonal: "
        "`pattern.diagonal(offset=-1, dim1=-2, dim2=-1)`) and average it over the batch and the "
        "query positions. A first-token head scores 1/(seq-1) here, because at query 1 the "
        "previous token *is* the first token.",
    )
    passed("prev_token_scores finds the head that attends to the previous token")


def check_first_token_scores(fn: Callable) -> None:
    """``fn(pattern: [batch, head, q, k]) -> [head]``: mean attention of each query (q >= 1) to
    position 0."""
    n = 6
    qs = range(1, n)
    per_head = [0.0, 1.0 / (n - 1), 1.0, _uniform_score_on(lambda q: 0, qs)]
    _check_simple_detector(
        fn, "first token (key = 0)", per_head,
        "Take pattern[..., q, 0] (the first column of each pattern) for query positions 1 "
        "onwards, and average over the batch and the query positions.",
    )
    passed("first_token_scores finds the head that attends to the first (BOS) token")


def check_generate_repeated_tokens(fn: Callable, model: Any) -> None:
    """``fn(model, seq_len, batch, seed) -> [batch, 1 + 2 * seq_len]`` of token ids: BOS, then
    seq_len random ordinary tokens, then the same seq_len tokens again."""
    seq_len, batch = 50, 4
    bos = model.tokenizer.bos_token_id
    low = 1 + max(model.tokenizer.all_special_ids)
    d_vocab = model.cfg.d_vocab
    out = call(fn, model, seq_len, batch, 0)
    expect_tensor(out, f"generate_repeated_tokens(model, seq_len={seq_len}, batch={batch}, seed=0)",
                  shape=(batch, 1 + 2 * seq_len), dims="batch, 1 + 2 * seq_len")
    if out.dtype != torch.long:
        raise CheckFailed(f"the tokens have dtype {out.dtype}; expected torch.int64 (token ids are "
                          "integers: `torch.randint` gives int64).")
    if not (out[:, 0] == bos).all():
        raise CheckFailed(f"every sequence must start with the BOS token (id {bos}, "
                          f"`model.tokenizer.bos_token_id`); column 0 is {out[:, 0].tolist()}.")
    first, second = out[:, 1 : seq_len + 1], out[:, seq_len + 1 :]
    if not (first == second).all():
        bad = (first != second).nonzero()[0].tolist()
        raise CheckFailed(
            f"positions 1..{seq_len} and {seq_len + 1}..{2 * seq_len} should hold the same tokens; "
            f"sequence {bad[0]} differs at offset {bad[1]} (position {1 + bad[1]} holds "
            f"{first[bad[0], bad[1]].item()}, position {seq_len + 1 + bad[1]} holds "
            f"{second[bad[0], bad[1]].item()}). Draw one random block and concatenate it twice."
        )
    many = call(fn, model, 100, 64, 2)  # 6400 draws: enough to hit any special id
    expect_tensor(many, "generate_repeated_tokens(model, seq_len=100, batch=64, seed=2)",
                  shape=(64, 201), dims="batch, 1 + 2 * seq_len")
    drawn = many[:, 1:]
    if drawn.min() < low or drawn.max() >= d_vocab:
        raise CheckFailed(
            f"the random tokens should be ordinary tokens, ids {low}..{d_vocab - 1} (special "
            f"tokens are {sorted(model.tokenizer.all_special_ids)}); yours range from "
            f"{drawn.min().item()} to {drawn.max().item()} (in a batch of 64 sequences of "
            "length 100). Pass `low` and `model.cfg.d_vocab` "
            "to `torch.randint`."
        )
    distinct = len(set(first[0].tolist()))
    if distinct < seq_len // 2:
        raise CheckFailed(f"the first sequence's random block has only {distinct} distinct tokens "
                          f"out of {seq_len}; draw each position independently and uniformly.")
    if all(torch.equal(first[0], first[i]) for i in range(1, batch)):
        raise CheckFailed("every sequence in the batch is the same; draw a different random "
                          "block for each row (one `torch.randint` of shape (batch, seq_len)).")
    torch.rand(7)  # move the global random state on: the seed alone must fix the output
    again = call(fn, model, seq_len, batch, 0)
    if not torch.equal(out, again):
        raise CheckFailed("two calls with seed=0 gave different tokens; make the output depend "
                          "only on `seed`, e.g. with `torch.Generator().manual_seed(seed)` passed "
                          "to `torch.randint(..., generator=...)`.")
    other = call(fn, model, seq_len, batch, 1)
    if torch.equal(out, other):
        raise CheckFailed("seed=0 and seed=1 gave the same tokens; use the seed.")
    small = call(fn, model, 3, 2, 5)
    expect_tensor(small, "generate_repeated_tokens(model, seq_len=3, batch=2, seed=5)",
                  shape=(2, 7), dims="batch, 1 + 2 * seq_len")
    passed("generate_repeated_tokens makes BOS + a random block + the same block again")


def check_induction_scores(fn: Callable) -> None:
    """``fn(pattern: [batch, head, q, k], seq_len) -> [head]``: mean attention from each token of
    the second repeat to the token just after its earlier copy."""
    N = 5
    n = 1 + 2 * N
    second_half = range(N + 1, 2 * N + 1)
    # Head 0: a perfect induction head (second half), BOS elsewhere.
    induction = _one_hot_rows([q - N + 1 if q > N else 0 for q in range(n)], n)
    # Head 1: attends to the earlier copy of the current token itself (a duplicate-token head).
    duplicate = _one_hot_rows([q - N if q > N else 0 for q in range(n)], n)
    # Head 2: previous-token head.
    previous = _one_hot_rows([max(q - 1, 0) for q in range(n)], n)
    heads = torch.stack([induction, duplicate, previous, _uniform_causal(n)])
    names = ("induction", "duplicate-token", "previous-token", "uniform")
    expected_one = torch.tensor([1.0, 0.0, 0.0, _uniform_score_on(lambda q: q - N + 1, second_half)])

    out = call(fn, heads[None].clone(), N)
    expect_tensor(out, f"induction_scores(pattern [batch=1, head=4, q={n}, k={n}], seq_len={N})",
                  shape=(4,), dims="head", floating=True)
    if not torch.allclose(out.float(), expected_one, atol=1e-4):
        rows = "; ".join(f"{h} head: yours {out[i].item():.3f}, expected {expected_one[i].item():.3f}"
                         for i, h in enumerate(names))
        hint = ("The key you want is one *after* the earlier copy: for query q in the second half "
                "the earlier copy of its token is at q - seq_len, so the key is q - seq_len + 1.")
        if abs(out[1].item() - 1.0) < 1e-3:
            hint = ("Your score is 1 for the head that attends to the earlier copy itself "
                    "(key q - seq_len): the induction head attends one token later, to "
                    "q - seq_len + 1.")
        raise CheckFailed(
            f"induction_scores on hand-made heads for a sequence [BOS, r1..r{N}, r1..r{N}]: {rows}. "
            f"Average over query positions {N + 1}..{2 * N} (the second copy) only. {hint}"
        )
    out = call(fn, _batch(heads), N)
    expect_close(out.float(), (expected_one + expected_one.flip(0)) / 2,
                 "induction_scores on a batch of two sequences (the second with the heads in "
                 "reverse order)", hint="Average over the batch axis too.")
    # The same heads built for another seq_len: the function must use its argument.
    N2 = 3
    n2 = 1 + 2 * N2
    ind2 = _one_hot_rows([q - N2 + 1 if q > N2 else 0 for q in range(n2)], n2)
    out = call(fn, torch.stack([ind2, torch.eye(n2)])[None], N2)
    expect_tensor(out, f"induction_scores(pattern [batch=1, head=2, q={n2}, k={n2}], seq_len={N2})",
                  shape=(2,), dims="head", floating=True)
    expect_close(out.float(), torch.tensor([1.0, 0.0]), f"induction_scores with seq_len={N2}",
                 hint="Use the `seq_len` argument rather than a fixed number.")
    passed("induction_scores finds the head that attends to the token after the earlier copy")
