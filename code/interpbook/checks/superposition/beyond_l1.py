"""Checks for section 5, "Beyond L1: TopK and JumpReLU" (book/chapters/superposition/05-beyond-l1.md).

Answers are known by construction: hand-made pre-activations whose top latents and
above-threshold latents are read off, latents with a known count of non-zeros, and
reconstructions (the data itself, its mean) whose FVU is 0 or 1 by definition.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_fraction_variance_unexplained",
    "check_jumprelu",
    "check_l0_norm",
    "check_topk_activation",
]


def check_topk_activation(topk_activation: Callable) -> None:
    pre = torch.tensor([[[3.0, -1.0, 2.0, 0.5], [0.2, 0.9, 0.5, 0.1]],
                        [[-1.0, -2.0, 0.5, -3.0], [0.3, 0.2, 0.1, 0.4]]])  # [batch 2, inst 2, d_sae 4]
    k = torch.tensor([3, 1])
    got = call(topk_activation, pre, k)
    expect_tensor(got, "topk_activation(pre [2, 2, 4], k = [3, 1])", (2, 2, 4), "batch, inst, d_sae", floating=True)
    want = torch.tensor([[[3.0, 0.0, 2.0, 0.5], [0.0, 0.9, 0.0, 0.0]],
                         [[0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.4]]])
    if float(got.min()) < 0:
        raise CheckFailed("topk_activation returned negative latents: apply the ReLU before choosing the top k (in the "
                          "second input of instance 0 only one pre-activation is positive, so only one latent is on).")
    if torch.allclose(got[:, 1], torch.tensor([[0.2, 0.9, 0.5, 0.0], [0.3, 0.2, 0.0, 0.4]]), atol=1e-6) or \
            torch.allclose(got[:, 0], torch.tensor([[3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]]), atol=1e-6):
        raise CheckFailed("Each instance has its own k (here 3 and 1): keep k[i] latents for instance i, e.g. with ranks "
                          "< k[None, :, None].")
    expect_close(got, want, "topk_activation on hand-made pre-activations", atol=1e-6,
                 hint="For each input and instance, keep the k largest latents (after the ReLU) and zero the rest; the "
                 "ranking is over the latent axis (the last one).")
    passed("topk_activation: ReLU, then the k[i] largest latents per input")


def check_jumprelu(jumprelu: Callable) -> None:
    pre = torch.tensor([[[0.05, 0.2, 0.5, -0.3]]])
    threshold = torch.tensor([[0.1, 0.1, 0.6, 0.1]])
    got = call(jumprelu, pre, threshold)
    expect_tensor(got, "jumprelu(pre [1, 1, 4], threshold [1, 4])", (1, 1, 4), "batch, inst, d_sae", floating=True)
    want = torch.tensor([[[0.0, 0.2, 0.0, 0.0]]])
    hint = "Keep pre where pre > threshold, 0 elsewhere."
    if torch.allclose(got, torch.tensor([[[0.0, 0.1, 0.0, 0.0]]]), atol=1e-6):
        hint = ("That is ReLU(pre - threshold), which shrinks the latent by the threshold. JumpReLU passes the whole "
                "value: pre * (pre > threshold).")
    expect_close(got, want, "jumprelu on hand-made pre-activations", atol=1e-6, hint=hint)
    passed("jumprelu: the whole value above the threshold, 0 below")


def check_l0_norm(l0_norm: Callable) -> None:
    f = torch.zeros(4, 2, 5)
    f[0, 0, :3] = 1.0  # instance 0: 3, 1, 0, 0 active -> mean 1
    f[1, 0, 4] = 0.2
    f[:, 1, :2] = 0.5  # instance 1: 2 active on every input -> 2
    got = call(l0_norm, f)
    expect_tensor(got, "l0_norm(f [4, 2, 5])", (2,), "instances", floating=True)
    want = torch.tensor([1.0, 2.0])
    hint = "Count the non-zero latents of each input, then average over the batch."
    if torch.allclose(got, torch.tensor([4.0, 8.0]), atol=1e-6):
        hint = "You summed over the batch: average the per-input counts instead."
    expect_close(got, want, "l0_norm on hand-made latents", atol=1e-6, hint=hint)
    passed("l0_norm: non-zero latents per input, averaged")


def check_fraction_variance_unexplained(fraction_variance_unexplained: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    h = 5.0 + torch.randn(100, 3, 4, generator=g)  # a large mean on top of unit noise
    mean = h.mean(0, keepdim=True).expand_as(h)
    got = call(fraction_variance_unexplained, h, mean)
    expect_tensor(got, "fraction_variance_unexplained(h, recon)", (3,), "instances", floating=True)
    if float(got.max()) < 0.5:
        raise CheckFailed(f"Reconstructing every input by the batch mean explains none of the variance, so its FVU is 1; "
                          f"got {got.numpy().round(3).tolist()}. Measure the total variance around the mean: "
                          "sum of (h - h.mean(0))^2, not of h^2.")
    expect_close(got, torch.ones(3), "FVU of the mean as reconstruction", atol=1e-5)
    got = call(fraction_variance_unexplained, h, h.clone())
    expect_close(got, torch.zeros(3), "FVU of a perfect reconstruction", atol=1e-6)
    half = mean + (h - mean) * (1 - 0.5 ** 0.5)  # error = (h - mean) / sqrt 2 in norm: FVU 1/2
    got = call(fraction_variance_unexplained, h, half)
    expect_close(got, torch.full((3,), 0.5), "FVU of a reconstruction with half the error variance", atol=1e-4,
                 hint="Sum the squared error over the batch and d_in, per instance, and divide by the summed squared "
                 "deviation from the mean.")
    passed("fraction_variance_unexplained: squared error over variance around the mean")
