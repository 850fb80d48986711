"""Checks for section 4, "Sparse autoencoders on the toy model"
(book/chapters/superposition/04-sparse-autoencoders.md).

Answers are known by construction: hand-set SAE weights whose latents and reconstructions are
worked out in the check, hand-made losses and latents, an SAE whose residuals come from a single
example (so resampling has one possible target), training runs whose outcome the setup forces
(latents that start dead stay dead without resampling), and decoder rows placed by hand around
known feature directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_dead_latents",
    "check_feature_recovery",
    "check_resample_dead",
    "check_sae",
    "check_sae_loss",
    "check_train_sae",
]


def _set(sae, **values) -> None:
    with torch.no_grad():
        for name, value in values.items():
            getattr(sae, name).copy_(value)


def check_sae(SAE: type) -> None:
    sae = call(SAE, 1, 2, 3)
    for name, shape in (("W_enc", (1, 2, 3)), ("b_enc", (1, 3)), ("W_dec", (1, 3, 2)), ("b_dec", (1, 2))):
        if not isinstance(getattr(sae, name, None), torch.Tensor):
            raise CheckFailed(f"SAE should keep the parameter {name}; leave __init__ as it is given.")
        expect_tensor(getattr(sae, name), f"SAE.{name}", shape)
    _set(sae, W_enc=torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]]]), b_enc=torch.tensor([[0.0, -0.5, 0.0]]),
         W_dec=torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]]), b_dec=torch.tensor([[0.5, 0.0]]))
    h = torch.tensor([[[1.5, 1.0]]])
    with torch.no_grad():
        f = call(sae.encode, h)
        expect_tensor(f, "SAE.encode(h)", (1, 1, 3), "batch, instances, d_sae", floating=True)
        # h - b_dec = (1, 1): pre = (1, 1 - 0.5, 0) = (1, 0.5, 0) -> ReLU (1, 0.5, 0).
        want = torch.tensor([[[1.0, 0.5, 0.0]]])
        hint = "f = ReLU((h - b_dec) W_enc + b_enc)."
        if torch.allclose(f, torch.tensor([[[1.5, 0.5, 0.5]]]), atol=1e-5):
            hint = "Subtract the decoder bias from h before encoding: (h - b_dec) W_enc + b_enc."
        expect_close(f, want, "SAE.encode on hand-set weights", atol=1e-5, hint=hint)
        # h - b_dec = (0, -2): pre = (0, -2.5, 2) -> a negative pre-activation the ReLU must zero.
        f_neg = call(sae.encode, torch.tensor([[[0.5, -2.0]]]))
        if float(f_neg.min()) < 0:
            raise CheckFailed("SAE.encode returned negative latents: apply the ReLU.")
        recon = call(sae.decode, torch.tensor([[[1.0, -0.5, 2.0]]]))
        expect_tensor(recon, "SAE.decode(f)", (1, 1, 2), "batch, instances, d_in", floating=True)
        # f W_dec = 1*(1,0) - 0.5*(0,1) + 2*(0.6,0.8) = (2.2, 1.1); + b_dec = (2.7, 1.1)
        hint = "h_hat = f W_dec + b_dec."
        if torch.allclose(recon, torch.tensor([[[2.2, 1.1]]]), atol=1e-5):
            hint = "Add the decoder bias b_dec after decoding."
        expect_close(recon, torch.tensor([[[2.7, 1.1]]]), "SAE.decode on hand-set weights", atol=1e-5, hint=hint)
    passed("SAE: ReLU((h - b_dec) W_enc + b_enc), then f W_dec + b_dec")


def check_sae_loss(sae_loss: Callable) -> None:
    h = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]])  # [batch 2, inst 2, d_in 2]
    recon = torch.zeros_like(h)
    penalty = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    coeff = torch.tensor([0.5, 2.0])
    got = call(sae_loss, h, recon, penalty, coeff)
    expect_tensor(got, "sae_loss(h, recon, penalty, coeff)", (2,), "instances", floating=True)
    # Instance 0: recon errors 5 and 0 -> mean 2.5; penalty mean 2 * 0.5 = 1 -> 3.5.
    # Instance 1: errors 0 and 2 -> mean 1; penalty mean 1 * 2 = 2 -> 3.
    want = torch.tensor([3.5, 3.0])
    hint = "Sum the squared error over d_in, add coeff * penalty, average over the batch."
    if torch.allclose(got, torch.tensor([2.25, 2.5]), atol=1e-5):
        hint = "You averaged the squared error over d_in; sum it over d_in (and average over the batch only)."
    elif torch.allclose(got, torch.tensor([6.5, 1.5]), atol=1e-5):
        hint = "The coefficients belong to the instances: coeff[i] multiplies instance i's penalty."
    elif torch.allclose(got, torch.tensor([7.0, 6.0]), atol=1e-5):
        hint = "Average over the batch, not sum."
    expect_close(got, want, "sae_loss on hand-made tensors", atol=1e-5, hint=hint)
    passed("sae_loss: summed squared error plus coeff * penalty, batch-averaged, per instance")


def check_dead_latents(dead_latents: Callable) -> None:
    f = torch.zeros(3, 2, 4)
    f[0, 0, 1] = 0.5
    f[2, 0, 3] = 1.0
    f[:, 1, 0] = 2.0  # instance 1: latent 0 always fires, the others never
    f[1, 1, 2] = 0.1
    got = call(dead_latents, f)
    expect_tensor(got, "dead_latents(f [3, 2, 4])", (2, 4), "instances, d_sae")
    want = torch.tensor([[True, False, True, False], [False, True, False, True]])
    got = got.bool().cpu()
    if torch.equal(got, torch.tensor([[True, True, True, True], [False, True, True, True]])):
        raise CheckFailed("A latent is dead only if it is zero on *every* example; yours marks latents dead when "
                          "they are zero on some example. Use (f > 0).any over the batch, then negate.")
    if not torch.equal(got, want):
        raise CheckFailed(f"On hand-made latents the dead ones are {want.tolist()}; got {got.tolist()}. Reduce over "
                          "the batch axis (0).")
    passed("dead_latents: never active on the batch")


def check_resample_dead(resample_dead: Callable, SAE: type) -> None:
    sae = SAE(1, 3, 4, seed=0)
    W_dec_before = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.0, 0.8]]])
    # Every latent is off (b_enc = -1, W_enc = 0), so the reconstruction is b_dec = 0 and the
    # residuals are h itself. Only example 2 is non-zero: it is the only input to resample from.
    _set(sae, W_enc=torch.zeros(1, 3, 4), b_enc=torch.full((1, 4), -1.0), W_dec=W_dec_before,
         b_dec=torch.zeros(1, 3))
    h = torch.zeros(5, 1, 3)
    h[2, 0] = torch.tensor([0.0, 3.0, 4.0])
    dead = torch.tensor([[False, True, False, True]])
    call(resample_dead, sae, h, dead, torch.Generator().manual_seed(0))
    target = torch.tensor([0.0, 0.6, 0.8])
    W_dec, W_enc, b_enc = sae.W_dec.detach(), sae.W_enc.detach(), sae.b_enc.detach()
    for j in (0, 2):
        if not torch.allclose(W_dec[0, j], W_dec_before[0, j]) or float(b_enc[0, j]) != -1.0:
            raise CheckFailed(f"Latent {j} is alive (dead[0, {j}] is False) but resample_dead changed it: only the dead "
                              "latents are resampled.")
    for j in (1, 3):
        if torch.allclose(W_dec[0, j], 5 * target, atol=1e-4):
            raise CheckFailed("The new decoder rows should be unit norm: divide the picked residual by its norm.")
        expect_close(W_dec[0, j], target, f"W_dec[0, {j}] after resampling", atol=1e-4,
                     hint="Dead latents take the (unit-norm) residual h - recon of an input picked with "
                     "probability proportional to its squared error: here only example 2 has any error.")
        expect_close(W_enc[0, :, j], 0.2 * target, f"W_enc[0, :, {j}] after resampling", atol=1e-4,
                     hint="The encoder column of a resampled latent is 0.2 times its new direction.")
        if abs(float(b_enc[0, j])) > 1e-6:
            raise CheckFailed(f"b_enc[0, {j}] is {float(b_enc[0, j]):.3g} after resampling; reset it to 0, or the latent "
                              "(whose old bias kept it off) may never fire.")
    passed("resample_dead: dead latents pointed at high-error inputs, live ones untouched")


def check_train_sae(train_sae: Callable, SAE: type) -> None:
    g = torch.Generator().manual_seed(0)
    directions = torch.eye(3)

    def batches():
        active = (torch.rand(256, 1, 3, generator=g) < 0.2).float()
        return active * torch.rand(256, 1, 3, generator=g) @ directions

    def dead_start_sae():
        sae = SAE(1, 3, 6, seed=0)
        with torch.no_grad():
            sae.b_enc[0, 3:] = -20.0  # latents 3, 4, 5 start dead and get no gradient
        return sae

    sae = dead_start_sae()
    losses = call(train_sae, sae, batches, 300, torch.tensor([0.01]), 1e-2, 0, 0, what="(300 steps, no resampling)")
    if not isinstance(losses, list) or len(losses) != 300:
        raise CheckFailed(f"train_sae should return one loss per step (300); got {type(losses).__name__} of length "
                          f"{len(losses) if hasattr(losses, '__len__') else '?'}.")
    if not float(losses[-1]) < 0.5 * float(losses[0]):
        raise CheckFailed(f"The loss should fall well below its start in 300 steps; it went from {float(losses[0]):.4f} to "
                          f"{float(losses[-1]):.4f}. Take an Adam step on sae.parameters() every step.")
    norms = sae.W_dec.detach().norm(dim=-1)
    if (norms - 1).abs().max() > 1e-4:
        raise CheckFailed(f"After training, every decoder row should have norm 1; the norms are "
                          f"{norms.numpy().round(3).tolist()}. Divide W_dec by its row norms after every step.")
    f_plain = sae(batches())[1].detach()
    sae = dead_start_sae()
    call(train_sae, sae, batches, 300, torch.tensor([0.01]), 1e-2, 50, 0, what="(300 steps, resampling every 50)")
    f_resampled = sae(batches())[1].detach()
    if bool((f_plain[..., 3:] > 0).any()):
        raise CheckFailed("Without resampling, latents that start dead (b_enc = -20) cannot come back, but yours fired: "
                          "with resample_every = 0 do not resample.")
    if not bool((f_resampled[..., 3:] > 0).any()):
        raise CheckFailed("With resample_every = 50, the three latents that start dead should be resampled and fire "
                          "again; none of them does. Track which latents fired since the last resampling, and pass the "
                          "ones that did not to resample_dead.")
    passed("train_sae: Adam, unit-norm decoder rows, resampling of dead latents")


def check_feature_recovery(feature_recovery: Callable) -> None:
    s = 1 / math.sqrt(2)
    W_true = torch.tensor([[1.0, 0.0, s], [0.0, 1.0, s]])  # features along e0, e1 and the diagonal
    W_dec = torch.tensor([[3.0, 0.0], [0.0, -1.0], [0.6, 0.8], [0.9, 0.1]])  # latents
    out = call(feature_recovery, W_dec, W_true)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise CheckFailed(f"feature_recovery should return (cos, recovered); got {type(out).__name__}.")
    cos, recovered = out
    expect_tensor(cos, "cos", (4, 3), "d_sae, n_features", floating=True)
    lat = W_dec / W_dec.norm(dim=-1, keepdim=True)
    want = lat @ W_true  # W_true columns are unit already
    hint = "cos[j, i] is the cosine between latent j's decoder row and feature i's column."
    if torch.allclose(cos, W_dec @ W_true, atol=1e-4):
        hint = "Normalise the decoder rows first: latent 0 has norm 3, and a cosine is at most 1."
    expect_close(cos, want, "cosine similarities of hand-placed latents and features", atol=1e-4, hint=hint)
    recovered = float(recovered)
    # Feature 0: latent 0 (cos 1). Feature 1: best is latent 2 (0.8), latent 1 is anti-aligned (-1).
    # Feature 2 (diagonal): latent 2 has (0.6 + 0.8) / sqrt 2 = 0.99. So 2 of 3.
    if abs(recovered - 1.0) < 1e-6:
        raise CheckFailed("Feature 1 is only matched by a latent pointing the opposite way (cosine -1); an SAE latent is "
                          "non-negative, so that does not recover it. Compare the cosine itself, not its absolute value.")
    if abs(recovered - 0.5) < 1e-6 or abs(recovered - 0.75) < 1e-6:
        raise CheckFailed("The fraction is over the true features (3 here), not over the latents: for each feature (a "
                          "column of cos) take the best latent, max over dim 0.")
    if abs(recovered - 2 / 3) > 1e-6:
        raise CheckFailed(f"Two of the three features have a latent with cosine >= 0.9, so recovered is 2/3; got "
                          f"{recovered:.4f}.")
    passed("feature_recovery: cosines of unit directions, best latent per feature")
