"""Checks for section 3, "The algorithm" (book/chapters/grokking/03-the-algorithm.md).

Answers are known by construction: toy weights whose product is chosen, closed-form values of
cosines, logits built from a known approximation plus a known orthogonal remainder, and grids
built from chosen 2-D coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed
from interpbook.checks.grokking import random_orthonormal_rows

__all__ = [
    "check_fraction_explained",
    "check_keep_frequencies_2d",
    "check_neuron_logit_map",
    "check_trig_logits",
]


def check_neuron_logit_map(neuron_logit_map: Callable, model: Any) -> None:
    d_model, d_mlp, p = 3, 6, 4
    g = torch.Generator().manual_seed(0)
    # Neuron n writes (n + 1) times residual direction n % 3; W_U is random.
    W_out = torch.zeros(1, d_mlp, d_model)
    for n in range(d_mlp):
        W_out[0, n, n % d_model] = n + 1.0
    W_U = torch.randn(d_model, p, generator=g)
    W_in = torch.randn(1, d_model, d_mlp, generator=g)
    toy = SimpleNamespace(W_in=W_in, W_out=W_out, W_U=W_U,
                          cfg=SimpleNamespace(d_model=d_model, d_mlp=d_mlp, d_vocab_out=p, n_layers=1))
    out = call(neuron_logit_map, toy)
    expect_tensor(out, "neuron_logit_map(toy model)", (d_mlp, p), "d_mlp, d_vocab_out", floating=True)
    want = torch.stack([(n + 1) * W_U[n % d_model] for n in range(d_mlp)])
    hint = "Row n should be what neuron n writes into the residual stream (W_out) read by the unembedding."
    if torch.allclose(out, W_in[0].T @ W_U, atol=1e-4):
        hint = ("You used W_in, the weights neurons *read* with. The neurons write to the residual stream "
                "with W_out [layer, d_mlp, d_model]: W_L = W_out[0] @ W_U.")
    expect_close(out, want, "neuron_logit_map on a toy model", atol=1e-4, hint=hint)
    out = call(neuron_logit_map, model)
    expect_tensor(out, "neuron_logit_map(model)", (model.cfg.d_mlp, model.cfg.d_vocab_out),
                  "d_mlp, d_vocab_out", floating=True)
    passed("neuron_logit_map: W_out @ W_U")


def check_trig_logits(trig_logits: Callable) -> None:
    p = 5
    out = call(trig_logits, p, [1])
    expect_tensor(out, f"trig_logits({p}, [1])", (p, p, p), "a, b, c", floating=True)
    w = 2 * math.pi / p
    cases = [((2, 1, 3), 1.0), ((0, 0, 1), math.cos(-w)), ((4, 3, 0), math.cos(7 * w)),
             ((1, 2, 4), math.cos(-w))]
    for (a, b, c), want in cases:
        got = float(out[a, b, c])
        if abs(got - want) > 1e-5:
            raise CheckFailed(
                f"trig_logits({p}, [1])[{a}, {b}, {c}] should be cos(2 pi (a + b - c) / p) = "
                f"cos(2 pi * {a + b - c} / {p}) = {want:.4f}; got {got:.4f}. Check the angle: 2 pi k / p "
                "times (a + b - c), with a, b, c on the first, second and third axes.")
    out = call(trig_logits, p, [1, 2])
    expect_tensor(out, f"trig_logits({p}, [1, 2])", (p, p, p), "a, b, c", floating=True)
    for (a, b, c) in [(3, 4, 2), (0, 0, 0), (1, 3, 4)]:
        if abs(float(out[a, b, c]) - 2.0) > 1e-5:
            raise CheckFailed(f"At c = a + b mod p every cosine is 1, so trig_logits({p}, [1, 2])[{a}, {b}, {c}] "
                              f"is 2; got {float(out[a, b, c]):.4f}. Sum over all the frequencies given.")
    want = math.cos(w) + math.cos(2 * w)  # a + b - c = 1 at [1, 2, 2]
    if abs(float(out[1, 2, 2]) - want) > 1e-5:
        raise CheckFailed(f"trig_logits({p}, [1, 2])[1, 2, 2] should be cos(2 pi/5) + cos(4 pi/5) = {want:.4f}; "
                          f"got {float(out[1, 2, 2]):.4f}.")
    passed("trig_logits: sum of cos(2 pi k (a + b - c) / p)")


def _scalar(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)):
        return float(value)
    raise CheckFailed(f"{what} should be a float, got {type(value).__name__}.")


def check_fraction_explained(fraction_explained: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    rows, p = 6, 5
    T = torch.randn(rows, p, generator=g)
    T = T - T.mean(-1, keepdim=True)
    offsets = 10 * torch.randn(rows, 1, generator=g)  # per-input constants: they change no prediction
    # Logits exactly 3 x the approximation, plus constants: everything is explained.
    got = _scalar(call(fraction_explained, 3 * T + offsets, T), "fraction_explained(3 T + c, T)")
    if abs(got - 1.0) > 1e-4:
        hint = " Centre both over the last axis, then fit the scale alpha = <L, T> / <T, T>."
        if got < 0.9:
            uncentred = 1 - float(((3 * T + offsets) - 3 * T).pow(2).sum() / (3 * T + offsets).pow(2).sum())
            if abs(got - uncentred) < 0.05:
                hint = (" The logits differ from 3 T only by a constant per row, which changes no "
                        "prediction: subtract each row's mean over c before comparing.")
            elif abs(got - (1 - 4 / 9)) < 1e-3:
                hint = " The logits are the approximation times 3: fit the best scale alpha instead of using 1."
        raise CheckFailed(f"Logits equal to 3 x the approximation plus a constant per row are fully "
                          f"explained (1.0); got {got:.4f}.{hint}")
    # The approximation may carry row constants of its own.
    got = _scalar(call(fraction_explained, 2 * T, T + offsets), "fraction_explained(2 T, T + c)")
    if abs(got - 1.0) > 1e-4:
        raise CheckFailed(f"An approximation T + (constant per row) explains the logits 2 T fully once both "
                          f"are centred; got {got:.4f}. Centre the approximation too.")
    # Half the variance is orthogonal to the approximation.
    N = torch.randn(rows, p, generator=g)
    N = N - N.mean(-1, keepdim=True)
    N = N - (N * T).sum() / T.pow(2).sum() * T
    N = N * T.norm() / N.norm()
    got = _scalar(call(fraction_explained, T + N + offsets, T), "fraction_explained(T + N, T)")
    if abs(got - 0.5) > 1e-4:
        raise CheckFailed(f"Logits T + N with N orthogonal to T and as large have half their variance "
                          f"explained by T (0.5); got {got:.4f}. Return 1 - |L - alpha T|^2 / |L|^2.")
    passed("fraction_explained: centred, best scale, 1 - residual / total")




def check_keep_frequencies_2d(keep_frequencies_2d: Callable) -> None:
    p, d = 7, 2  # basis indices: 0 const, (1, 2) frequency 1, (3, 4) frequency 2, (5, 6) frequency 3
    basis = random_orthonormal_rows(p, 3)
    C = torch.randn(p, p, d, generator=torch.Generator().manual_seed(4))

    def grid_of(coeffs):
        return torch.einsum("ia,jb,ijd->abd", basis, basis, coeffs)

    grid = grid_of(C)
    out = call(keep_frequencies_2d, grid, basis, [2])
    expect_tensor(out, f"keep_frequencies_2d(grid [{p}, {p}, {d}], basis, [2])", (p, p, d), "a, b, d",
                  floating=True)
    keep = torch.zeros(p, dtype=torch.bool)
    keep[[0, 3, 4]] = True
    want = grid_of(C * (keep[:, None] & keep[None, :])[..., None])
    hint = ("Keep the terms (i, j) with i and j both in {0, 3, 4} (const, cos 2, sin 2) and transform back "
            "to the (a, b) grid.")
    only = keep.clone()
    only[0] = False
    either = (keep[:, None] | keep[None, :])
    either[0, 0] = True
    if torch.allclose(out, grid_of(C * (only[:, None] & only[None, :])[..., None]), atol=1e-4):
        hint = ("You dropped the constant row and column: they hold the mean and the waves in a alone and b "
                "alone, which the algorithm needs. Keep index 0 too.")
    elif torch.allclose(out, grid_of(C * either[..., None]), atol=1e-4):
        hint = ("You kept terms where only one of i, j is allowed (such as cos 2 in a times cos 3 in b). "
                "Both indices must be kept ones: use & between the two masks.")
    elif torch.allclose(out, C * (keep[:, None] & keep[None, :])[..., None], atol=1e-4):
        hint = ("You returned the kept Fourier coefficients; transform them back to the (a, b) grid "
                "(g = B^T G B).")
    expect_close(out, want, "keep_frequencies_2d(grid, basis, [2]) on a grid of known coefficients",
                 atol=1e-4, hint=hint)
    out = call(keep_frequencies_2d, grid, basis, [])
    mean_only = torch.zeros(p, p, 1)
    mean_only[0, 0] = 1.0
    expect_close(out, grid_of(C * mean_only),
                 "keep_frequencies_2d(grid, basis, []) (only the constant term)", atol=1e-4,
                 hint="With no frequencies, only the (const, const) term, the mean, remains.")
    passed("keep_frequencies_2d: constant and chosen frequencies on both axes, back on the grid")
