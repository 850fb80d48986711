"""Checks for section 4, "Training dynamics" (book/chapters/grokking/04-training-dynamics.md).

Answers are known by construction: closed-form values and norms of the a + b waves, logits
made of known parts along and orthogonal to chosen directions, tensors whose norm is chosen,
and hand-written training curves with known phase boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_phase_boundaries",
    "check_split_logits",
    "check_sum_directions",
    "check_weight_norm",
]


def check_sum_directions(sum_directions: Callable) -> None:
    p, freqs = 7, [2, 3]
    out = call(sum_directions, p, freqs)
    expect_tensor(out, f"sum_directions({p}, {freqs})", (2 * len(freqs), p * p), "direction, problem",
                  floating=True)
    norms = out.double().norm(dim=1)
    if (norms - 1).abs().max() > 1e-4:
        raise CheckFailed(f"Each row of sum_directions should have norm 1; the norms are "
                          f"{norms.numpy().round(3).tolist()}. Divide each wave by its norm "
                          f"(p / sqrt(2) = {p / math.sqrt(2):.3f} here).")
    a = torch.arange(p, dtype=torch.float64).repeat_interleave(p)
    b = torch.arange(p, dtype=torch.float64).repeat(p)
    scale = math.sqrt(2) / p
    for i, k in enumerate(freqs):
        for j, (name, wave) in enumerate((("cos", torch.cos), ("sin", torch.sin))):
            want = scale * wave(2 * math.pi * k * (a + b) / p)
            row = 2 * i + j
            hint = (f"Row {row} should be {name}(2 pi {k} (a + b) / p) over the problems a * p + b, scaled "
                    "to unit norm; the rows go cos k, sin k for each k in turn.")
            if torch.allclose(out[row].double(), scale * wave(2 * math.pi * k * (a - b) / p), atol=1e-4):
                hint = "That is a wave in a - b; the algorithm's directions are waves in a + b."
            elif torch.allclose(out[row].double(), scale * wave(2 * math.pi * k * (b * p + a) / p), atol=1e-4) \
                    or torch.allclose(out[row].double(), scale * wave(2 * math.pi * k * (a * p + b) / p), atol=1e-4):
                hint = "Use a + b, the sum of the two numbers, not the problem's index."
            expect_close(out[row].double(), want, f"row {row} ({name} {k}) of sum_directions({p}, {freqs})",
                         atol=1e-4, hint=hint)
    passed("sum_directions: unit cos and sin of k (a + b) for each key frequency")


def check_split_logits(split_logits: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    n_problems, p, m = 12, 4, 3
    # Orthonormal directions with mean zero over the problems, like the a + b waves.
    D = torch.randn(n_problems, m, generator=g)
    D, _ = torch.linalg.qr(D - D.mean(0, keepdim=True))
    directions = D.T.contiguous()  # [m, problem]
    along = directions.T @ torch.randn(m, p, generator=g)  # [problem, p], inside the span
    rest = torch.randn(n_problems, p, generator=g)
    rest = rest - directions.T @ (directions @ rest)  # orthogonal to the directions
    means = torch.tensor([[1.0, -2.0, 0.5, 3.0]])  # per-answer constants
    rest = rest - rest.mean(0, keepdim=True)
    logits = along + rest + means
    out = call(split_logits, logits, directions)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise CheckFailed(f"split_logits should return a pair (restricted, excluded); got {type(out).__name__}.")
    restricted, excluded = out
    expect_tensor(restricted, "restricted", (n_problems, p), "problem, p", floating=True)
    expect_tensor(excluded, "excluded", (n_problems, p), "problem, p", floating=True)
    hint = "The excluded logits are the logits minus their projection onto the directions."
    if torch.allclose(excluded, rest, atol=1e-4):
        hint = ("You removed the column means too: the excluded logits keep everything but the part along "
                "the directions, including each column's mean.")
    elif torch.allclose(restricted, rest + means, atol=1e-4):
        hint = "restricted and excluded are swapped: return (restricted, excluded)."
    expect_close(excluded, rest + means, "excluded logits (the part along the directions removed)",
                 atol=1e-4, hint=hint)
    hint = "The restricted logits are the projection onto the directions plus each column's mean."
    if torch.allclose(restricted, along, atol=1e-4):
        hint = ("You left out the column means: add logits.mean(0, keepdim=True) to the projection, "
                "or the restricted model forgets how likely each answer is on average.")
    expect_close(restricted, along + means, "restricted logits (projection plus column means)", atol=1e-4,
                 hint=hint)
    passed("split_logits: projection plus means, and the rest")


def check_weight_norm(weight_norm: Callable) -> None:
    state = {"a": torch.full((2, 2), 1.5), "b": torch.tensor([3.0, 4.0]), "c": torch.zeros(3)}
    # squares: 4 * 2.25 = 9, 9 + 16 = 25, 0 -> sqrt(34)
    got = call(weight_norm, state)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = float(got)
    if not isinstance(got, (int, float)):
        raise CheckFailed(f"weight_norm should return a float, got {type(got).__name__}.")
    if abs(got - math.sqrt(34)) > 1e-5:
        hint = ""
        if abs(got - 8.0) < 1e-5:
            hint = (" That is the sum of each tensor's norm (3 + 5 + 0). The norm of all parameters together "
                    "is the square root of the sum of all squares: sqrt(9 + 25) = sqrt(34).")
        elif abs(got - 34) < 1e-4:
            hint = " That is the squared norm: take the square root."
        raise CheckFailed(f"For tensors [[1.5, 1.5], [1.5, 1.5]], [3, 4] and [0, 0, 0] the total norm is "
                          f"sqrt(34) = {math.sqrt(34):.4f}; got {got:.4f}.{hint}")
    passed("weight_norm: one norm over all parameters")


def _curves(**columns: Any) -> dict[str, list]:
    epochs = list(range(0, 10 * len(columns["train_acc"]), 10))
    return {"epoch": epochs, **columns}


def check_phase_boundaries(phase_boundaries: Callable) -> None:
    p = 7
    chance = math.log(p)  # 1.946
    # Epochs 0, 10, ..., 90. The test loss dips below chance at epoch 10, before anything is
    # memorised; train accuracy first reaches 1 at epoch 30; the test loss falls below chance
    # (again) at epoch 60; test accuracy reaches 0.999 at epoch 80.
    curves = _curves(
        train_acc=[0.1, 0.3, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        test_acc=[0.1, 0.1, 0.1, 0.0, 0.0, 0.1, 0.6, 0.99, 0.9995, 1.0],
        test_loss=[2.0, 1.9, 2.5, 6.0, 7.0, 3.0, 1.5, 0.1, 0.01, 0.001],
    )
    out = call(phase_boundaries, curves, p)
    if not (isinstance(out, tuple) and len(out) == 3):
        raise CheckFailed(f"phase_boundaries should return a tuple of three epochs; got {out!r}.")
    got = tuple(int(e) for e in out)
    want = (30, 60, 80)
    if got != want:
        hint = ""
        if got[1] == 10:
            hint = (f" The test loss dips below chance (ln {p} = {chance:.3f}) at epoch 10, before the "
                    "training set is memorised: look for the start of cleanup only after memorisation.")
        elif got == (3, 6, 8):
            hint = " Those are positions in the lists; return the epochs (curves['epoch'][i])."
        elif got[2] == 70:
            hint = " Test accuracy 0.99 at epoch 70 is not yet 0.999."
        raise CheckFailed(f"On hand-made curves the boundaries are {want} (train accuracy 1 at epoch 30, test "
                          f"loss below ln p after that at epoch 60, test accuracy >= 0.999 at epoch 80); got "
                          f"{got}.{hint}")
    passed("phase_boundaries: memorised, test loss below chance after that, test accuracy 99.9 %")
