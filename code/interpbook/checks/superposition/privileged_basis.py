"""Checks for section 3, "Superposition in a privileged basis"
(book/chapters/superposition/03-privileged-basis.md).

Answers are known by construction: hand-set weights whose hidden pre-activation is negative (so
the hidden ReLU decides the output), weight matrices whose counts are read off by hand, and the
frequencies and ranges of signed sparse features.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = ["check_features_per_neuron", "check_relu_toy_model", "check_signed_batch"]


def check_relu_toy_model(ReLUToyModel: type) -> None:
    model = call(ReLUToyModel, 2, 2, 1)
    with torch.no_grad():
        model.W[0] = torch.tensor([[1.0, -1.0]])  # features 0 and 1 pull the neuron opposite ways
        model.W[1] = torch.tensor([[1.0, 0.5]])
        model.b_final[0] = torch.tensor([0.1, 0.1])
        model.b_final[1] = torch.tensor([0.0, -0.1])
    x = torch.tensor([[[0.2, 0.6], [0.4, 0.2]]])
    with torch.no_grad():
        out = call(model, x, what="(one batch of two instances)")
    expect_tensor(out, "ReLUToyModel(...)(x)", (1, 2, 2), "batch, instances, features", floating=True)
    # Instance 0: W x = -0.4 -> ReLU 0 -> output ReLU(b) = (0.1, 0.1).
    # Instance 1: W x = 0.5 -> W^T h = (0.5, 0.25) -> + b = (0.5, 0.15).
    want = torch.tensor([[[0.1, 0.1], [0.5, 0.15]]])
    hint = "h = ReLU(W x), then ReLU(W^T h + b_final)."
    if torch.allclose(out, torch.tensor([[[0.0, 0.5], [0.5, 0.15]]]), atol=1e-5):
        hint = ("Instance 0's neuron has pre-activation W x = -0.4, so the hidden ReLU switches it off and the "
                "output is ReLU(b) = (0.1, 0.1): apply the ReLU to the hidden layer too.")
    expect_close(out, want, "ReLUToyModel on hand-set weights", atol=1e-5, hint=hint)
    passed("ReLUToyModel: ReLU(W^T ReLU(W x) + b)")


def check_features_per_neuron(features_per_neuron: Callable) -> None:
    W = torch.tensor([[[0.9, 0.6, -0.9, 0.1], [0.5, 0.49, 0.0, -1.0], [-0.7, -0.8, 0.2, 0.0]]])
    got = call(features_per_neuron, W)
    expect_tensor(got, "features_per_neuron(W [1, 3, 4])", (1, 3), "instances, neurons")
    got = got.long().cpu()
    want = torch.tensor([[2, 1, 0]])
    if torch.equal(got, torch.tensor([[3, 2, 2]])):
        raise CheckFailed("You counted negative weights too (|w| >= threshold). A feature with weight -0.9 never "
                          "switches a ReLU neuron on: count weights w >= threshold.")
    if torch.equal(got, torch.tensor([[2, 0, 0]])):
        raise CheckFailed("Neuron 1 has weight exactly 0.5 on feature 0, which counts at threshold 0.5: use >=.")
    if not torch.equal(got, want):
        raise CheckFailed(f"For W = {W[0].tolist()} (rows = neurons) the counts of weights >= 0.5 are "
                          f"{want.tolist()}; got {got.tolist()}. Count along the feature axis (the last one).")
    got = call(features_per_neuron, W, 0.05).long().cpu()
    if not torch.equal(got, torch.tensor([[3, 2, 1]])):
        raise CheckFailed(f"With threshold 0.05 the counts are [[3, 2, 1]]; got {got.tolist()}. Use the threshold "
                          "argument.")
    passed("features_per_neuron: positive weights at least the threshold, per neuron")


def check_signed_batch(signed_batch: Callable) -> None:
    probs = torch.tensor([1.0, 0.2])
    out = call(signed_batch, 5000, probs, 4, torch.Generator().manual_seed(0))
    expect_tensor(out, "signed_batch(5000, [1, 0.2], 4)", (5000, 2, 4), "batch, instances, features",
                  floating=True)
    if bool((out == -1).any()) and float((out != 0).float().mean((0, 2))[1]) > 0.9:
        raise CheckFailed("Inactive features came out as -1: shift only the active values (2u - 1 where active), "
                          "and leave the inactive ones at exactly 0.")
    if out.min() >= 0:
        raise CheckFailed(f"Active values should be uniform on [-1, 1); yours range from {out.min():.3f} to "
                          f"{out.max():.3f}. Map u in [0, 1) to 2u - 1.")
    if out.min() < -1 or out.max() >= 1:
        raise CheckFailed(f"Values should lie in [-1, 1); yours range from {out.min():.3f} to {out.max():.3f}.")
    active = (out != 0).float().mean((0, 2))
    if not torch.allclose(active, probs, atol=0.03):
        raise CheckFailed(f"The fraction of active features should be close to {probs.tolist()}; got "
                          f"{active.numpy().round(3).tolist()}.")
    dense = out[:, 0]
    if abs(float(dense.mean())) > 0.03 or abs(float(dense.abs().mean()) - 0.5) > 0.03:
        raise CheckFailed(f"Active values should be uniform on [-1, 1): mean 0 and mean |x| 0.5; got mean "
                          f"{float(dense.mean()):.3f} and mean |x| {float(dense.abs().mean()):.3f}.")
    passed("signed_batch: active with probability p, uniform on [-1, 1), inactive exactly 0")
