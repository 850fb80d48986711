"""Checks for section 2, "Feature geometry" (book/chapters/superposition/02-feature-geometry.md).

Answers are known by construction: orthogonal, antipodal, pentagonal and dropped features,
whose dimensionalities (1, 1/2, 2/5, 0) are worked out in the text, and hand-set weights in
each phase of the two-feature, one-dimension model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = ["check_classify_phase", "check_dimensions_per_feature", "check_feature_dimensionality"]


def _pentagon(scale: float = 1.0) -> torch.Tensor:
    angles = torch.arange(5) * 2 * math.pi / 5
    return scale * torch.stack([torch.cos(angles), torch.sin(angles)])  # [2, 5]


def check_dimensions_per_feature(dimensions_per_feature: Callable) -> None:
    W = torch.zeros(3, 2, 5)
    W[0, :, :2] = torch.eye(2)  # two features with a dimension each, three dropped
    W[1] = _pentagon()  # five unit features in two dimensions
    W[2, :, :2] = 2 * torch.eye(2)  # two features stored with norm 2
    got = call(dimensions_per_feature, W)
    expect_tensor(got, "dimensions_per_feature(W [3, 2, 5])", (3,), "instances", floating=True)
    want = torch.tensor([1.0, 0.4, 0.25])
    hint = "m / ||W||_F^2: hidden size over the sum of all squared entries of the instance's W."
    if abs(float(got[0]) - 2.5) < 1e-4:
        hint = "That divides the number of features (5) by ||W||_F^2; use the hidden size m = W.shape[1]."
    elif abs(float(got[2]) - 0.5) < 1e-4:
        hint = "Square the norms: two features of norm 2 count as ||W||_F^2 = 8, so m / 8 = 0.25."
    expect_close(got, want, "dimensions_per_feature on hand-built W", atol=1e-4, hint=hint)
    passed("dimensions_per_feature: m / ||W||_F^2")


def check_feature_dimensionality(feature_dimensionality: Callable) -> None:
    cases = []
    W = torch.zeros(2, 2, 3)
    W[0] = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])  # an antipodal pair and a loner
    W[1] = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # two orthogonal features of norm 2, one dropped
    cases.append((W, torch.tensor([[0.5, 0.5, 1.0], [1.0, 1.0, 0.0]]),
                  "an antipodal pair plus one feature alone; two orthogonal features of norm 2 and a dropped one"))
    cases.append((_pentagon(1.5)[None], torch.full((1, 5), 0.4), "five equal features on a pentagon"))
    for W, want, what in cases:
        got = call(feature_dimensionality, W)
        expect_tensor(got, f"feature_dimensionality(W {list(W.shape)})", tuple(want.shape), "instances, features",
                      floating=True)
        if not torch.isfinite(got).all():
            raise CheckFailed(f"feature_dimensionality returned {got.tolist()} for {what}: it should be finite. "
                              "Square the overlaps before summing (an antipodal pair has overlaps +1 and -1), "
                              "and normalise with ||W_i|| + 1e-8 so a dropped feature gives 0.")
        hint = "D_i = ||W_i||^2 / sum_j (W_hat_i . W_j)^2, with W_hat_i the unit vector along W_i."
        if W.shape[-1] == 3 and abs(float(got[1, 0]) - 0.25) < 1e-3:
            hint = ("A feature alone in its dimension has D = 1 whatever its norm: use the unit vector W_hat_i in "
                    "the overlaps, not W_i itself.")
        expect_close(got, want, f"feature_dimensionality for {what}", atol=1e-3, hint=hint)
    passed("feature_dimensionality: 1 alone, 1/2 antipodal, 2/5 on a pentagon, 0 dropped")


def check_classify_phase(classify_phase: Callable) -> None:
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0], [0.2, -0.9], [-0.6, 0.6], [0.0, 0.0], [0.4, 0.3]])
    W = W[:, None, :]  # [instances, 1, 2]
    got = call(classify_phase, W)
    expect_tensor(got, "classify_phase(W [7, 1, 2])", (7,), "instances")
    want = torch.tensor([0, 1, 2, 1, 2, 0, 0])
    if torch.equal(got.long().cpu(), torch.tensor([0, 1, 0, 0, 1, 0, 0])):
        raise CheckFailed("Instances with weights (1, -1) and (0.2, -0.9) store feature 1 with a negative weight: "
                          f"that still counts as stored. Compare the norm of each column with the threshold, not "
                          f"the weight itself. Got {got.tolist()}, expected {want.tolist()}.")
    if not torch.equal(got.long().cpu(), want):
        raise CheckFailed(f"For weights {W[:, 0].tolist()} the phases are {want.tolist()} (2 = both stored, "
                          f"1 = only feature 1, 0 = otherwise, stored meaning norm >= 0.5); got {got.tolist()}.")
    passed("classify_phase: norms against the threshold, three phases")
