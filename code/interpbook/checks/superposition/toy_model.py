"""Checks for section 1, "The toy model of superposition"
(book/chapters/superposition/01-toy-model.md).

Answers are known by construction: frequencies of active features against their probability,
hand-set weights whose output is worked out in the check, losses of hand-picked tensors, and
training runs whose outcome is forced by the setup (a feature of importance zero is dropped;
dense features in as many dimensions as features are all kept).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_generate_batch",
    "check_importance_weighted_loss",
    "check_toy_model",
    "check_train_toy_model",
]


def check_generate_batch(generate_batch: Callable) -> None:
    probs = torch.tensor([1.0, 0.5, 0.1, 0.0])
    g = torch.Generator().manual_seed(0)
    out = call(generate_batch, 4000, probs, 6, g)
    expect_tensor(out, "generate_batch(4000, [1, 0.5, 0.1, 0], 6)", (4000, 4, 6),
                  "batch, instances, features", floating=True)
    if out.min() < 0 or out.max() >= 1:
        raise CheckFailed(f"Active features should be uniform on [0, 1); values range from {out.min():.3f} "
                          f"to {out.max():.3f}.")
    active = (out != 0).float().mean((0, 2))  # per instance
    if abs(float(active[2]) - 0.9) < 0.05:
        raise CheckFailed("With feature probability 0.1 about 10 % of the features should be active; yours has "
                          f"{float(active[2]):.0%} active. The probability is that of being *on*: keep a "
                          "feature where rand < p.")
    if not torch.allclose(active, probs, atol=0.03):
        raise CheckFailed(f"The fraction of active features per instance should be close to the feature "
                          f"probabilities {probs.tolist()}; got {active.numpy().round(3).tolist()}. Draw the "
                          "mask per (batch, instance, feature) and compare it with feature_probability[:, None].")
    both = ((out[:, 1, 0] != 0) & (out[:, 1, 1] != 0)).float().mean()
    if abs(float(both) - 0.25) > 0.05:
        raise CheckFailed(f"Features should be active independently: at probability 0.5, two given features are "
                          f"both active about 25 % of the time; yours {float(both):.0%}. Draw one random number per "
                          "feature, not one per example.")
    values = out[:, 0]  # probability 1: every entry active
    if abs(float(values.mean()) - 0.5) > 0.02:
        raise CheckFailed(f"Active values should be uniform on [0, 1), with mean 0.5; yours have mean "
                          f"{float(values.mean()):.3f}.")
    passed("generate_batch: independent features, active with probability p, uniform when active")


def check_toy_model(ToyModel: type) -> None:
    model = call(ToyModel, 2, 3, 2)
    for name, shape in (("W", (2, 2, 3)), ("b_final", (2, 3))):
        if not isinstance(getattr(model, name, None), torch.Tensor):
            raise CheckFailed(f"ToyModel should keep the parameter {name}; leave __init__ as it is given.")
        expect_tensor(getattr(model, name), f"ToyModel.{name}", shape)
    with torch.no_grad():
        # Instance 0: feature 0 -> dim 0, feature 1 -> dim 1, feature 2 -> minus dim 0 (antipodal to 0).
        model.W[0] = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        # Instance 1: only feature 2 is stored, with weight 2.
        model.W[1] = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
        model.b_final[0] = torch.tensor([0.0, -0.5, 0.0])
        model.b_final[1] = torch.tensor([0.1, 0.0, -1.0])
    x = torch.tensor([[[0.8, 0.6, 0.3], [0.8, 0.6, 0.3]]])  # [batch 1, instance 2, feature 3]
    with torch.no_grad():
        out = call(model, x, what="(one batch of two instances)")
    expect_tensor(out, "ToyModel(...)(x)", (1, 2, 3), "batch, instances, features", floating=True)
    # Instance 0: h = (0.8 - 0.3, 0.6) = (0.5, 0.6); W^T h = (0.5, 0.6, -0.5); + b = (0.5, 0.1, -0.5)
    # -> ReLU (0.5, 0.1, 0). Instance 1: h = (0.6, 0); W^T h = (0, 0, 1.2); + b -> (0.1, 0, 0.2).
    want = torch.tensor([[[0.5, 0.1, 0.0], [0.1, 0.0, 0.2]]])
    hint = "h = W x per instance, then ReLU(W^T h + b_final)."
    if torch.allclose(out, torch.tensor([[[0.5, 0.1, -0.5], [0.1, 0.0, 0.2]]]), atol=1e-5):
        hint = "You left out the ReLU: the readout is ReLU(W^T W x + b)."
    elif torch.allclose(out, torch.tensor([[[0.5, 0.6, 0.0], [0.0, 0.0, 1.2]]]), atol=1e-5):
        hint = "You left out the bias b_final (it goes inside the ReLU)."
    elif torch.allclose(out, torch.tensor([[[0.5, 0.1, 0.0], [0.5, 0.1, 0.0]]]), atol=1e-5) or \
            torch.allclose(out, torch.tensor([[[0.5, 0.1, 0.0], [0.6, 0.6, 0.0]]]), atol=1e-5):
        hint = "Both instances came out the same: use each instance's own W (the 'inst' axis of the einsum)."
    expect_close(out, want, "ToyModel on hand-set weights", atol=1e-5, hint=hint)
    passed("ToyModel: ReLU(W^T W x + b), per instance")


def check_importance_weighted_loss(importance_weighted_loss: Callable) -> None:
    features = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])  # [batch 2, inst 2, feat 2]
    out = torch.zeros_like(features)
    importance = torch.tensor([[1.0, 0.25], [2.0, 0.0]])
    got = call(importance_weighted_loss, out, features, importance)
    expect_tensor(got, "importance_weighted_loss(out, features, importance)", (2,), "instances",
                  floating=True)
    # Instance 0: example 0 -> 1 * 1 = 1, example 1 -> 0.25 * 1 = 0.25; mean 0.625.
    # Instance 1: each example -> 2 * 0.25 = 0.5; mean 0.5.
    want = torch.tensor([0.625, 0.5])
    hint = "Sum I_i (x_i - x'_i)^2 over features, then average over the batch."
    if torch.allclose(got, torch.tensor([0.3125, 0.25]), atol=1e-6):
        hint = "You averaged over the features too: sum over features, average over the batch only."
    elif torch.allclose(got, torch.tensor([1.0, 0.5]), atol=1e-6):
        hint = "You left out the importance weights."
    elif torch.allclose(got, torch.tensor([1.25, 1.0]), atol=1e-6):
        hint = "You summed over the batch: average over it instead."
    expect_close(got, want, "importance_weighted_loss on a hand-made batch", atol=1e-6, hint=hint)
    passed("importance_weighted_loss: importance-weighted squared error, per instance")


def check_train_toy_model(train_toy_model: Callable, ToyModel: type) -> None:
    # Instance 0: 3 dense features in 2 dimensions, but feature 0 has importance 0, so the model
    # must spend its two dimensions on features 1 and 2. Instance 1: 2 dense features, 2
    # dimensions: both stored, orthogonally.
    model = ToyModel(2, 3, 2, seed=0)
    prob = torch.tensor([1.0, 1.0])
    importance = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    losses = call(train_toy_model, model, prob, importance, 600, 256, 1e-2, 0,
                  what="(a 2-instance toy model, 600 steps)")
    if not isinstance(losses, list) or len(losses) != 600:
        raise CheckFailed(f"train_toy_model should return a list with one loss per step (600); got "
                          f"{type(losses).__name__} of length {len(losses) if hasattr(losses, '__len__') else '?'}.")
    if not float(losses[-1]) < 0.5 * float(losses[0]):
        raise CheckFailed(f"The summed loss should fall well below its start within 600 steps (lr 1e-2); it went "
                          f"from {float(losses[0]):.3f} to {float(losses[-1]):.3f}. Do you take an optimiser step "
                          "on model.parameters() every step?")
    norms = model.W.detach().norm(dim=1)  # [instance, feature]
    if float(norms[0, 0]) > 0.5 * float(norms[0, 1:].min()):
        raise CheckFailed(f"Feature 0 of instance 0 has importance 0, so the model should drop it and keep "
                          f"features 1 and 2; the stored norms are {norms[0].numpy().round(2).tolist()}. Pass the "
                          "importance to importance_weighted_loss.")
    if float(norms[1, :2].min()) < 0.7:
        raise CheckFailed(f"Instance 1 has two dense, important features and two dimensions: both should be "
                          f"stored (norm near 1); got {norms[1, :2].numpy().round(2).tolist()}. Are the features "
                          "drawn with feature_probability (1 = always active)?")
    passed("train_toy_model: fresh batches, importance-weighted, every instance trained")
