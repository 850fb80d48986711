"""Checks for section 2, "Activations as trigonometry"
(book/chapters/grokking/02-activations-as-trigonometry.md).

Answers are known by construction: activations that encode their own problem and position,
grids built from chosen 2-D coefficients in an orthonormal basis, and coefficient tensors and
share tables written by hand.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed
from interpbook.checks.grokking import random_orthonormal_rows

__all__ = [
    "check_activation_grid",
    "check_fourier_2d",
    "check_frequency_share",
    "check_neuron_clusters",
]


def check_activation_grid(activation_grid: Callable) -> None:
    p, n_pos, d = 5, 3, 2
    a = torch.arange(p).repeat_interleave(p).float()  # problem index a * p + b
    b = torch.arange(p).repeat(p).float()
    pos = torch.arange(n_pos).float()
    chan = torch.arange(d).float()
    # Each entry spells out where it came from: 100 a + b + 1000 position + 0.5 channel.
    acts = (100 * a[:, None, None] + b[:, None, None] + 1000 * pos[None, :, None]
            + 0.5 * chan[None, None, :])
    out = call(activation_grid, acts, p)
    expect_tensor(out, f"activation_grid(activations [{p * p}, {n_pos}, {d}], p={p})", (p, p, d),
                  "a, b, d", floating=True)
    want = (100 * torch.arange(p).float()[:, None, None] + torch.arange(p).float()[None, :, None]
            + 1000 * (n_pos - 1) + 0.5 * chan[None, None, :])
    hint = "Entry [a, b, c] should be the activation of problem a * p + b at the last position."
    if torch.allclose(out, want - 1000 * (n_pos - 1), atol=1e-4):
        hint = "You took position 0 (the token a); the answer is computed at the last position, '='."
    elif torch.allclose(out, want.transpose(0, 1), atol=1e-4):
        hint = "a and b are swapped: problems are numbered a * p + b, so a is the slow (first) axis."
    expect_close(out, want, "activation_grid on activations that encode (a, b, position)", atol=1e-4,
                 hint=hint)
    passed("activation_grid: last position, indexed [a, b]")




def check_fourier_2d(fourier_2d: Callable) -> None:
    p, d = 5, 3
    basis = random_orthonormal_rows(p, 0)
    # One product u_1(a) u_3(b): a single coefficient, at [1, 3].
    grid = (basis[1][:, None] * basis[3][None, :])[..., None]
    out = call(fourier_2d, grid, basis)
    expect_tensor(out, f"fourier_2d(grid [{p}, {p}, 1], basis)", (p, p, 1), "i, j, d", floating=True)
    want = torch.zeros(p, p, 1)
    want[1, 3] = 1.0
    hint = "The grid u_1(a) u_3(b) has one coefficient, 1 at [1, 3]: transform both axes with basis @ ...."
    if torch.allclose(out[:, :, 0].T, want[:, :, 0], atol=1e-4):
        hint = "Your result is transposed: index i belongs to a (the first axis), j to b."
    expect_close(out, want, "fourier_2d of the grid u_1(a) u_3(b)", atol=1e-4, hint=hint)
    # A grid built from known coefficients: g = B^T C B for each trailing index.
    C = torch.randn(p, p, d, generator=torch.Generator().manual_seed(1))
    grid = torch.einsum("ia,jb,ijd->abd", basis, basis, C)
    out = call(fourier_2d, grid, basis)
    expect_tensor(out, f"fourier_2d(grid [{p}, {p}, {d}], basis)", (p, p, d), "i, j, d", floating=True)
    expect_close(out, C, "fourier_2d of a grid built from known coefficients", atol=1e-4,
                 hint="Transform the a axis and the b axis, each with the basis vector's index first "
                 "(G = B g B^T per trailing index), and leave the last axis alone.")
    passed("fourier_2d: both axes, B g B^T per trailing index")


def check_frequency_share(frequency_share: Callable) -> None:
    p = 7  # basis order: const, cos1, sin1, cos2, sin2, cos3, sin3
    C = torch.zeros(p, p, 3)
    # Neuron 0: a big mean, cos 1 in a, and sin 1 (a) x sin 1 (b): all of it is frequency 1.
    C[0, 0, 0], C[1, 0, 0], C[2, 2, 0] = 10.0, 3.0, 4.0
    # Neuron 1: sin 1 in b, a cross term cos 1 (a) x cos 2 (b), and cos 2 (a) x cos 2 (b).
    C[0, 2, 1], C[1, 3, 1], C[3, 3, 1] = 1.0, 1.0, 1.0
    # Neuron 2: frequency 3 in a, frequency 2 in b, in equal measure.
    C[5, 0, 2], C[0, 4, 2] = 2.0, 2.0
    for k, want in [(1, [1.0, 1 / 3, 0.0]), (2, [0.0, 1 / 3, 0.5]), (3, [0.0, 0.0, 0.5])]:
        out = call(frequency_share, C, k)
        expect_tensor(out, f"frequency_share(coeffs [{p}, {p}, 3], k={k})", (3,), "neuron", floating=True)
        want = torch.tensor(want)
        hint = (f"Count the terms (i, j) with both i and j in {{0, {2 * k - 1}, {2 * k}}} (const, cos {k}, "
                f"sin {k}), except (0, 0), over all terms except (0, 0).")
        if k == 1 and abs(float(out[0]) - 25 / 125) < 1e-4:
            hint = ("Neuron 0 is a large mean (the (const, const) term) plus frequency 1 only, so its "
                    "share is 1: leave (const, const) out of the denominator too.")
        elif k == 1 and abs(float(out[1]) - 2 / 3) < 1e-4:
            hint = ("Neuron 1's term cos 1 (a) x cos 2 (b) mixes two frequencies; it does not count for "
                    "either. Both indices must be const, cos k or sin k.")
        expect_close(out, want, f"frequency_share(C, k={k}) on hand-built coefficients", atol=1e-4,
                     hint=hint)
    passed("frequency_share: terms of const and frequency k only, the mean left out")


def _clusters(value, what: str) -> dict[int, list[int]]:
    if not isinstance(value, dict):
        raise CheckFailed(f"{what} should be a dict from frequency to a list of neurons, got "
                          f"{type(value).__name__}.")
    return {int(k): [int(n) for n in v] for k, v in value.items()}


def check_neuron_clusters(neuron_clusters: Callable) -> None:
    # Rows are frequencies 1, 2, 3; columns are neurons 0..4.
    shares = torch.tensor([
        [0.9, 0.1, 0.2, 0.1, 0.3],
        [0.05, 0.8, 0.1, 0.2, 0.4],
        [0.05, 0.1, 0.6, 0.7, 0.3],
    ])
    got = _clusters(call(neuron_clusters, shares, 0.5), "neuron_clusters(shares, 0.5)")
    want = {1: [0], 2: [1], 3: [2, 3]}
    if got != want:
        hint = ""
        if got == {0: [0], 1: [1], 2: [2, 3]}:
            hint = " Row i is frequency i + 1: frequencies are numbered from 1, the rows from 0."
        elif 4 in sum(got.values(), []):
            hint = (" Neuron 4's best share is 0.4, below min_share = 0.5: it belongs to no cluster.")
        elif {k: sorted(v) for k, v in got.items()} == want:
            hint = " Sort each cluster's neurons."
        raise CheckFailed(f"neuron_clusters on a hand-made [3, 5] share table should be {want}; got "
                          f"{got}.{hint}")
    got = _clusters(call(neuron_clusters, shares, 0.35), "neuron_clusters(shares, 0.35)")
    if got != {1: [0], 2: [1, 4], 3: [2, 3]}:
        raise CheckFailed(f"With min_share = 0.35, neuron 4 (best share 0.4, frequency 2) joins cluster 2: "
                          f"expected {{1: [0], 2: [1, 4], 3: [2, 3]}}, got {got}. Use the min_share argument.")
    passed("neuron_clusters: each neuron at its best frequency, numbered from 1")
