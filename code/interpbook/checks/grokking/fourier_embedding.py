"""Checks for section 1, "Periodicity in the embedding"
(book/chapters/grokking/01-fourier-embedding.md).

Answers are known by construction: values of cosines and sines at chosen points, functions
built from known coefficients in an orthonormal basis, and norms picked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed
from interpbook.checks.grokking import random_orthonormal_rows

__all__ = [
    "check_fourier_basis",
    "check_fourier_coefficients",
    "check_frequency_norms",
    "check_key_frequencies",
]


def _names(p: int) -> list[str]:
    return ["const"] + [f"{f} {k}" for k in range(1, (p - 1) // 2 + 1) for f in ("cos", "sin")]


def check_fourier_basis(fourier_basis: Callable) -> None:
    for p in (7, 13):
        out = call(fourier_basis, p)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise CheckFailed(f"fourier_basis({p}) should return a pair (basis, names); got "
                              f"{type(out).__name__}.")
        basis, names = out
        expect_tensor(basis, f"fourier_basis({p})[0]", (p, p), "basis vector, x", dtype=torch.float32)
        if list(names) != _names(p):
            raise CheckFailed(f"fourier_basis({p})[1] should be {_names(p)}; got {list(names)}. "
                              "The order is const, then cos k and sin k for each k = 1, 2, ...")
        gram = basis.double() @ basis.double().T
        diag = gram.diagonal()
        off = gram - torch.diag(diag)
        if off.abs().max() < 1e-4 and (diag - 1).abs().max() > 1e-3:
            raise CheckFailed(f"The rows of fourier_basis({p}) are orthogonal but their lengths are "
                              f"{diag.sqrt().numpy().round(3).tolist()}, not 1. Scale the constant row by "
                              "1/sqrt(p) and every cosine and sine by sqrt(2/p).")
        x = torch.arange(p, dtype=torch.float64)
        for row, name in enumerate(names):
            if name == "const":
                want = torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64)
            else:
                fn, k = name.split()
                wave = torch.cos if fn == "cos" else torch.sin
                want = math.sqrt(2 / p) * wave(2 * math.pi * int(k) * x / p)
            expect_close(basis[row].double(), want, f"row {row} ({name!r}) of fourier_basis({p})",
                         atol=1e-5, hint=f"Row {row} should be sqrt(2/p) * {name.split()[0]}(2 pi k x / p) "
                         f"with k = {name.split()[-1]}, x = 0 .. p-1 (the constant row is 1/sqrt(p)). "
                         "Is the frequency right (k, not k - 1 or k + 1), and the period p?"
                         if name != "const" else "The constant row is 1/sqrt(p) everywhere.")
        expect_close(gram, torch.eye(p, dtype=torch.float64), f"basis @ basis.T for p = {p}", atol=1e-4)
    passed("fourier_basis: orthonormal, in the order const, cos 1, sin 1, ...")




def check_fourier_coefficients(fourier_coefficients: Callable) -> None:
    p, d = 7, 3
    basis = random_orthonormal_rows(p, 0)
    # One basis vector as the only column: its coefficients are one-hot.
    x = basis[4][:, None].clone()
    out = call(fourier_coefficients, x, basis)
    expect_tensor(out, "fourier_coefficients(basis[4] as a column, basis)", (p, 1), "basis vector, d",
                  floating=True)
    onehot = torch.zeros(p, 1)
    onehot[4] = 1.0
    expect_close(out, onehot, "coefficients of basis vector 4", atol=1e-5,
                 hint="Basis vector 4 has coefficient 1 on row 4 and 0 elsewhere. The coefficient "
                 "of basis vector f is the dot product of row f of the basis with the column: "
                 "basis @ x, not basis.T @ x.")
    # Functions built from known coefficients: x = basis.T @ C.
    C = torch.randn(p, d, generator=torch.Generator().manual_seed(1))
    x = basis.T @ C
    out = call(fourier_coefficients, x, basis)
    expect_tensor(out, "fourier_coefficients(x, basis)", (p, d), "basis vector, d", floating=True)
    expect_close(out, C, "coefficients of x = basis.T @ C", atol=1e-4,
                 hint="These should be exactly C: one coefficient per (basis vector, column).")
    passed("fourier_coefficients: basis @ x, one row per basis vector")


def check_frequency_norms(frequency_norms: Callable) -> None:
    p, d = 7, 2
    # Row order: const, cos1, sin1, cos2, sin2, cos3, sin3.
    C = torch.zeros(p, d)
    C[0] = torch.tensor([2.0, 0.0])  # frequency 0: norm 2
    C[1] = torch.tensor([3.0, 0.0])  # frequency 1: cos (3, 0), sin (0, 4) -> norm 5
    C[2] = torch.tensor([0.0, 4.0])
    C[6] = torch.tensor([1.0, 0.0])  # frequency 3: sin only, (1, 0) -> norm 1; frequency 2: 0
    out = call(frequency_norms, C)
    expect_tensor(out, "frequency_norms(C) for p = 7", ((p + 1) // 2,), "frequency", floating=True)
    want = torch.tensor([2.0, 5.0, 0.0, 1.0])
    sq_total = float(C.pow(2).sum())
    hint = "Entry 0 is the constant row; entry k >= 1 combines rows 2k-1 (cos k) and 2k (sin k)."
    if torch.allclose(out, want.pow(2), atol=1e-4):
        hint = "These are the squared norms: take the square root at the end."
    elif abs(float(out[1]) - 7.0) < 1e-4:
        hint = ("Frequency 1 has a cos row of norm 3 and a sin row of norm 4: together sqrt(9 + 16) = 5, "
                "not 3 + 4 = 7. Add squares, then take the root.")
    elif abs(float(out.pow(2).sum()) - sq_total) < 1e-3:
        hint = ("Your squared norms sum to the total, but rows are paired wrongly: row 0 is the "
                "constant alone, then (1, 2), (3, 4), ...")
    expect_close(out, want, "frequency_norms on a hand-built [7, 2] matrix", atol=1e-4, hint=hint)
    passed("frequency_norms: constant alone, then cos and sin of each frequency together")


def _as_int_list(value: Any, what: str) -> list[int]:
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    try:
        out = [int(v) for v in value]
    except TypeError:
        raise CheckFailed(f"{what} should be a list of ints, got {type(value).__name__}.") from None
    if any(out[i] > out[i + 1] for i in range(len(out) - 1)):
        raise CheckFailed(f"{what} should be sorted from smallest to largest; got {out}.")
    return out


def check_key_frequencies(key_frequencies: Callable) -> None:
    # Squared norms 5, 50, 30, 10, 5 (total 100): 50 + 30 = 80 % is reached with two.
    norms = torch.tensor([5.0, 50.0, 30.0, 10.0, 5.0]).sqrt()
    got = _as_int_list(call(key_frequencies, norms, 0.79), "key_frequencies(norms, 0.79)")
    if got != [1, 2]:
        hint = ""
        if got == [1]:
            hint = (" Frequency 1 alone carries 50 %, short of 79 %: keep the frequency that makes "
                    "the running share reach `share`, not only those before it.")
        elif len(got) > 2:
            hint = (" Did you add the norms instead of their squares? A frequency's share of the "
                    "matrix is its squared norm over the total squared norm.")
        raise CheckFailed(f"With squared norms [5, 50, 30, 10, 5] (total 100), frequencies 1 and 2 "
                          f"carry 80 %, enough for share = 0.79; got {got}.{hint}")
    got = _as_int_list(call(key_frequencies, norms, 0.85), "key_frequencies(norms, 0.85)")
    if got != [1, 2, 3]:
        raise CheckFailed(f"For share = 0.85 you need frequencies 1, 2 and 3 (90 %); got {got}.")
    # Order: the largest frequency is the strongest, so "largest first" is not sorted.
    norms = torch.tensor([0.0, 1.0, 8.0, 1.0, 9.0, 1.0]).sqrt()
    got = _as_int_list(call(key_frequencies, norms), "key_frequencies(norms)")
    if got != [2, 4]:
        raise CheckFailed(f"With squared norms [0, 1, 8, 1, 9, 1], frequencies 2 and 4 carry 85 %, "
                          f"which reaches the default share 0.8; got {got}. Sort by size, largest first, "
                          "and return the chosen frequencies sorted.")
    passed("key_frequencies: the fewest frequencies reaching the share")
