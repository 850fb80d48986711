"""Checks for section 4, "Reverse-engineering the circuit"
(book/chapters/induction/04-reverse-engineering.md).

Each check runs the learner's function on small hand-built weights whose answer is known in
closed form (identity and projection matrices, one-hot directions, all-zero embeddings), and
on invariants the answer must satisfy, rather than on a second copy of the solution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_composition_score",
    "check_decompose_k",
    "check_full_ov_circuit",
    "check_k_composition_scores",
    "check_pos_attention_pattern",
    "check_top_1_copy_accuracy",
]


def _factored_matrix_cls():
    from transformer_lens import FactoredMatrix

    return FactoredMatrix


def _expect_factored(value: Any, what: str, shape: tuple[int, ...] | None = None):
    FactoredMatrix = _factored_matrix_cls()
    if not isinstance(value, FactoredMatrix):
        raise CheckFailed(
            f"{what} should be a FactoredMatrix, got {type(value).__name__}. Build it from its "
            "factors (e.g. `FactoredMatrix(A, B)`, or `W_E @ model.OV[layer, head]`) instead of "
            "multiplying the dense matrices out."
        )
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{what} has shape {list(value.shape)}; expected {list(shape)}.")
    return value


def _scalar(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise CheckFailed(f"{what} should be a single number, got a tensor of shape "
                              f"{list(value.shape)}.")
        return float(value.item())
    if isinstance(value, (int, float)):
        return float(value)
    raise CheckFailed(f"{what} should be a float (or a 0-d tensor), got {type(value).__name__}.")


def _toy_model(W_E, W_pos, W_Q, W_K, W_V, W_O, W_U) -> SimpleNamespace:
    """A stand-in with the weight attributes a TransformerLens model has (no forward pass)."""
    FactoredMatrix = _factored_matrix_cls()
    n_layers, n_heads, d_model, d_head = W_Q.shape
    cfg = SimpleNamespace(n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_head=d_head,
                          d_vocab=W_E.shape[0], n_ctx=W_pos.shape[0])
    return SimpleNamespace(
        cfg=cfg, W_E=W_E, W_pos=W_pos, W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O, W_U=W_U,
        OV=FactoredMatrix(W_V, W_O), QK=FactoredMatrix(W_Q, W_K.transpose(-2, -1)),
    )


# --------------------------------------------------------------------------------------------
# Full OV circuit


def check_full_ov_circuit(full_ov_circuit: Callable, model: Any) -> None:
    """``full_ov_circuit(model, layer, head)`` is ``W_E W_V W_O W_U`` as a FactoredMatrix."""
    g = torch.Generator().manual_seed(0)
    d_vocab, d_model, d_head, n_layers, n_heads = 7, 5, 2, 2, 3
    W = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    toy = _toy_model(W(d_vocab, d_model), W(4, d_model), W(n_layers, n_heads, d_model, d_head),
                     W(n_layers, n_heads, d_model, d_head), W(n_layers, n_heads, d_model, d_head),
                     W(n_layers, n_heads, d_head, d_model), W(d_model, d_vocab))
    # (0, 1) first: with [head, layer] it reads a real but wrong head, which the hint below names.
    for layer, head in [(0, 1), (1, 2)]:
        out = call(full_ov_circuit, toy, layer, head)
        _expect_factored(out, f"full_ov_circuit(toy model, {layer}, {head})", (d_vocab, d_vocab))
        # Row i: embed token i, send it through the head's values and output, read the logits.
        expected = torch.stack([
            (toy.W_E[i] @ toy.W_V[layer, head] @ toy.W_O[layer, head]) @ toy.W_U
            for i in range(d_vocab)
        ])
        expect_close(out.AB, expected, f"full_ov_circuit(toy model, {layer}, {head}).AB",
                     atol=1e-4, hint="Order: W_E, then W_V and W_O of *this* layer and head, "
                     "then W_U. Did you index [layer, head] (not [head, layer])?")
    out = call(full_ov_circuit, model, model.cfg.n_layers - 1, 0)
    _expect_factored(out, "full_ov_circuit(model, ...)", (model.cfg.d_vocab, model.cfg.d_vocab))
    if out.mdim > model.cfg.d_model:
        raise CheckFailed(f"The inner dimension of your FactoredMatrix is {out.mdim}, larger "
                          f"than d_model = {model.cfg.d_model}: keep it factored.")
    passed("full_ov_circuit: W_E W_V W_O W_U of the right head, factored")


# --------------------------------------------------------------------------------------------
# Top-1 copying


def check_top_1_copy_accuracy(top_1_copy_accuracy: Callable) -> None:
    FactoredMatrix = _factored_matrix_cls()
    n = 10
    # Identity: every token's own logit is the largest, accuracy 1.
    eye = FactoredMatrix(torch.eye(n), torch.eye(n))
    acc = _scalar(call(top_1_copy_accuracy, eye), "top_1_copy_accuracy(identity)")
    if abs(acc - 1.0) > 1e-6:
        raise CheckFailed(f"On the identity matrix every row's maximum is on the diagonal, so the "
                          f"accuracy is 1.0; got {acc:.4g}.")
    # Cyclic shift: every row's maximum is one column over, accuracy 0.
    shift = torch.roll(torch.eye(n), 1, dims=1)
    acc = _scalar(call(top_1_copy_accuracy, FactoredMatrix(torch.eye(n), shift)),
                  "top_1_copy_accuracy(shift)")
    if abs(acc) > 1e-6:
        raise CheckFailed(f"On a cyclic shift matrix (row i's maximum at column i+1) the accuracy "
                          f"is 0.0; got {acc:.4g}. Compare each row's argmax with the row index.")
    # Seven of ten rows copy; rows 1-3 prefer token 0. (Read by *columns*, 9 of 10 would
    # look right, so this also tells rows from columns.) Factors that are not square.
    M = torch.eye(n)
    for i in (1, 2, 3):
        M[i, 0] = 2.0 + 0.01 * i
    A = torch.cat([M, torch.zeros(n, 3)], dim=1)  # [10, 13]
    B = torch.cat([torch.eye(n), torch.zeros(3, n)], dim=0)  # [13, 10]
    acc = _scalar(call(top_1_copy_accuracy, FactoredMatrix(A, B)), "top_1_copy_accuracy(M)")
    if abs(acc - 0.7) > 1e-6:
        raise CheckFailed(f"On a matrix where rows 1, 2 and 3 have their maximum in column 0 "
                          f"the accuracy is 0.7; got {acc:.4g}. Take the argmax over each *row* "
                          "(the output token axis, dim=-1).")
    # Batching must not change the answer: a 1000 x 1000 matrix with a known accuracy.
    n = 1000
    g = torch.Generator().manual_seed(0)
    A = torch.randn(n, 16, generator=g)
    full = A @ A.T  # Gram matrix of random rows: the diagonal (|a_i|^2) almost always wins
    expected = (full.argmax(-1) == torch.arange(n)).float().mean().item()
    acc = _scalar(call(top_1_copy_accuracy, FactoredMatrix(A, A.T)), "top_1_copy_accuracy(1000 rows)")
    if abs(acc - expected) > 1e-6:
        raise CheckFailed(f"On a 1000 x 1000 matrix the accuracy should be {expected:.4f}; got "
                          f"{acc:.4f}. Do your batches cover every row exactly once (including "
                          "the last, shorter batch)? Is each row compared with its own index start + i, "
                          "not with its place i inside the batch?")
    passed("top_1_copy_accuracy: rows with their maximum on the diagonal")


# --------------------------------------------------------------------------------------------
# Positional attention pattern


def check_pos_attention_pattern(pos_attention_pattern: Callable) -> None:
    n_ctx, d_model, d_head = 6, 4, 3
    # All-zero positional embeddings: every score is 0, so each query spreads its attention
    # evenly over itself and the positions before it.
    out = call(pos_attention_pattern, torch.zeros(n_ctx, d_model), torch.randn(d_model, d_head),
               torch.randn(d_model, d_head))
    expect_tensor(out, "pos_attention_pattern(...)", (n_ctx, n_ctx), "query_pos key_pos", floating=True)
    uniform = torch.tril(torch.ones(n_ctx, n_ctx)) / torch.arange(1, n_ctx + 1)[:, None]
    expect_close(out, uniform, "pattern with all-zero W_pos", atol=1e-5,
                 hint="With equal scores, query i should attend 1/(i+1) to each key j <= i and 0 "
                 "to later keys: mask the future (j > i) to -inf *before* the softmax over keys.")
    # One-hot positions, W_Q = W_K = c * I: the score of a query with itself is c^2 / sqrt(d_head),
    # all other scores are 0. So query i puts e^s / (e^s + i) on itself.
    c = 2.0
    d = 4
    out = call(pos_attention_pattern, torch.eye(d), c * torch.eye(d), c * torch.eye(d))
    expect_tensor(out, "pos_attention_pattern(I, cI, cI)", (d, d), floating=True)
    s = c * c / math.sqrt(d)
    diag = torch.tensor([math.exp(s) / (math.exp(s) + i) for i in range(d)])
    expect_close(out.diagonal(), diag, "diagonal of the pattern for W_pos = I, W_Q = W_K = 2I",
                 atol=1e-5, hint="Scores are (W_pos W_Q)(W_pos W_K)^T divided by sqrt(d_head) "
                 "(here d_head = 4, so by 2), then softmax over the key axis (dim=-1).")
    # d_head != d_model: W_Q = W_K = c [I | 0] have d_head = 9 columns, so the same scores as
    # above are divided by sqrt(9) = 3; dividing by sqrt(d_model) = 2 gives the previous pattern.
    wide = torch.cat([c * torch.eye(d), torch.zeros(d, 5)], dim=1)
    out = call(pos_attention_pattern, torch.eye(d), wide, wide)
    expect_tensor(out, "pos_attention_pattern(I, W_Q, W_K) with d_head = 9", (d, d), floating=True)
    s = c * c / 3.0
    diag = torch.tensor([math.exp(s) / (math.exp(s) + i) for i in range(d)])
    expect_close(out.diagonal(), diag, "diagonal of the pattern for d_model = 4, d_head = 9",
                 atol=1e-5, hint="Divide the scores by sqrt(d_head) = sqrt(W_Q.shape[-1]) = 3, "
                 "not sqrt(d_model) = 2.")
    # A query that looks one position back.
    shift = torch.zeros(d, d)
    shift[torch.arange(1, d), torch.arange(d - 1)] = 1.0  # row i reads position i-1
    out = call(pos_attention_pattern, torch.eye(d), 20 * shift, 20 * torch.eye(d))
    if not bool((out[torch.arange(1, d), torch.arange(d - 1)] > 0.99).all()):
        raise CheckFailed("With W_Q mapping position i onto direction i-1 and W_K = identity, "
                          "query i should attend to key i-1; it does not. Check which axis is the "
                          f"query and which the key: the pattern came back as\n{out}")
    passed("pos_attention_pattern: causal mask, 1/sqrt(d_head), softmax")


# --------------------------------------------------------------------------------------------
# Decomposing the keys


def check_decompose_k(decompose_k: Callable) -> None:
    g = torch.Generator().manual_seed(1)
    n_comp, pos, d_model, d_head = 5, 7, 6, 3
    components = torch.randn(n_comp, pos, d_model, generator=g)
    W_K = torch.randn(d_model, d_head, generator=g)
    out = call(decompose_k, components, W_K)
    expect_tensor(out, "decompose_k(components, W_K)", (n_comp, pos, d_head), "component pos d_head",
                  floating=True)
    # Linearity: the parts add up to the keys of the whole residual stream.
    expect_close(out.sum(0), components.sum(0) @ W_K, "the sum over components of your keys",
                 atol=1e-4, hint="The keys of the summed residual stream must equal the sum of "
                 "the components' keys: multiply each component by W_K, no bias, no mixing, and no "
                 "1/sqrt(d_head) scaling (that belongs to the attention scores, not the keys).")
    # A component that is zero contributes nothing; a one-hot component reads one row of W_K.
    components = torch.zeros(2, 1, d_model)
    components[1, 0, 4] = 1.0
    out = call(decompose_k, components, W_K)
    expect_close(out[:, 0], torch.stack([torch.zeros(d_head), W_K[4]]),
                 "keys of a zero and a one-hot component", atol=1e-6)
    passed("decompose_k: one part of the keys per residual component")


# --------------------------------------------------------------------------------------------
# Composition scores


def check_composition_score(composition_score: Callable) -> None:
    FactoredMatrix = _factored_matrix_cls()
    d = 4
    I = torch.eye(d)
    score = _scalar(call(composition_score, I, I), "composition_score(I, I)")
    if abs(score - 1 / math.sqrt(d)) > 1e-5:
        # 1 = ||I I|| / ||I|| (one norm) or the spectral norm; 2 = no normalisation at all.
        extra = (" Then divide by the product of both norms, ||W_A||_F * ||W_B||_F."
                 if abs(score - 1.0) < 1e-5 or abs(score - 2.0) < 1e-5 else "")
        raise CheckFailed(f"For two {d}x{d} identity matrices ||I I||_F / (||I||_F ||I||_F) = "
                          f"2 / (2 * 2) = {1 / math.sqrt(d):.4f}; got {score:.4f}. Use the "
                          f"Frobenius norm (root of the sum of squared entries).{extra}")
    # W_A writes only into direction 0; W_B reads only direction 1: nothing gets through.
    W_A = torch.zeros(d, d)
    W_A[2, 0] = 3.0
    W_B = torch.zeros(d, d)
    W_B[1, 3] = 1.0
    score = _scalar(call(composition_score, W_A, W_B), "composition_score(W_A, W_B)")
    if abs(score) > 1e-6:
        raise CheckFailed(f"W_A writes only into direction 0 and W_B reads only from direction 1, "
                          f"so the product is zero and so is the score; got {score:.4g}. Is the "
                          "product W_A @ W_B (in that order)?")
    # Now W_B reads exactly where W_A writes: a perfect match, whatever the scales.
    W_B = torch.zeros(d, d)
    W_B[0, 3] = 0.1
    score = _scalar(call(composition_score, W_A, W_B), "composition_score(W_A, W_B)")
    if abs(score - 1.0) > 1e-5:
        where = ("Is the product W_A @ W_B, in that order (W_A acts first)?" if abs(score) < 1e-6
                 else "Divide by both norms.")
        raise CheckFailed(f"W_A = 3 e_2 e_0^T (writes direction 0) and W_B = 0.1 e_0 e_3^T (reads "
                          f"direction 0) line up exactly: the score is 1 (it ignores scale); got "
                          f"{score:.4g}. {where}")
    # FactoredMatrix inputs: a rank-k projection P in d dims has P P = P, score 1/sqrt(k).
    k, d = 3, 8
    Q, _ = torch.linalg.qr(torch.randn(d, k, generator=torch.Generator().manual_seed(2)))
    P = FactoredMatrix(Q, Q.T)
    score = _scalar(call(composition_score, P, P), "composition_score(P, P) for FactoredMatrix P")
    if abs(score - 1 / math.sqrt(k)) > 1e-4:
        raise CheckFailed(f"For a FactoredMatrix projection P of rank {k}, ||P P||_F / ||P||_F^2 "
                          f"= 1/sqrt({k}) = {1 / math.sqrt(k):.4f}; got {score:.4f}. A "
                          "FactoredMatrix has its own `.norm()` and `@`.")
    # Mixed: a tensor with a FactoredMatrix.
    score = _scalar(call(composition_score, Q @ Q.T, P), "composition_score(tensor, FactoredMatrix)")
    if abs(score - 1 / math.sqrt(k)) > 1e-4:
        raise CheckFailed(f"composition_score(tensor, FactoredMatrix) for the same projection "
                          f"should also be {1 / math.sqrt(k):.4f}; got {score:.4f}.")
    passed("composition_score: Frobenius, scale-free, tensors and factored")


def check_k_composition_scores(k_composition_scores: Callable, model: Any) -> None:
    """A toy model where head 0.0 writes into direction 0, head 1.0 *queries* with direction 0
    (Q-composition) and head 1.1 takes its *keys* from direction 0 (K-composition)."""
    n_layers, n_heads, d_model, d_head = 2, 2, 4, 1
    e = torch.eye(d_model)
    Z = lambda *s: torch.zeros(*s)  # noqa: E731
    W_Q, W_K, W_V = Z(n_layers, n_heads, d_model, d_head), Z(n_layers, n_heads, d_model, d_head), \
        Z(n_layers, n_heads, d_model, d_head)
    W_O = Z(n_layers, n_heads, d_head, d_model)
    W_V[0, 0, :, 0], W_O[0, 0, 0] = e[3], e[0]  # head 0.0 reads direction 3, writes direction 0
    W_V[0, 1, :, 0], W_O[0, 1, 0] = e[3], e[2]  # head 0.1 reads direction 3, writes direction 2
    W_Q[1, 0, :, 0], W_K[1, 0, :, 0] = e[0], e[1]  # head 1.0: query from 0, key from 1
    W_Q[1, 1, :, 0], W_K[1, 1, :, 0] = e[3], e[0]  # head 1.1: query from 3, key from 0
    W_Q[0] = W_K[0] = e[1][:, None]  # (layer 0's QK is not used)
    W_V[1], W_O[1] = e[1][:, None], e[1][None, :]
    toy = _toy_model(torch.eye(d_model), torch.eye(d_model), W_Q, W_K, W_V, W_O, torch.eye(d_model))
    out = call(k_composition_scores, toy)
    expect_tensor(out, "k_composition_scores(toy model)", (n_heads, n_heads),
                  "layer-0 head, layer-1 head", floating=True)
    expected = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    if torch.allclose(out, torch.tensor([[1.0, 0.0], [0.0, 0.0]]), atol=1e-4):
        raise CheckFailed("Your scores say head 0.0 composes with head 1.0, which reads head 0.0's "
                          "output with its *queries*: that is Q-composition. For K-composition "
                          "the OV output must feed W_K: use the transpose of layer 1's QK matrix.")
    expect_close(out, expected, "k_composition_scores on a toy model", atol=1e-4,
                 hint="Row a is layer-0 head a, column b is layer-1 head b; only head 0.0 writes "
                 "where head 1.1's keys read, so only [0, 1] is non-zero (and it is 1).")
    out = call(k_composition_scores, model)
    n = model.cfg.n_heads
    expect_tensor(out, "k_composition_scores(model)", (n, n), "layer-0 head, layer-1 head",
                  floating=True)
    ref = model.all_composition_scores("K").scores[0, :, 1, :]
    expect_close(out, ref, "k_composition_scores(model)", atol=1e-3, rtol=1e-2,
                 hint="TransformerLens's model.all_composition_scores('K') disagrees.")
    passed("k_composition_scores: layer-0 OV into layer-1 keys")
