"""The superposition chapter's checks reject the mistakes a learner would plausibly make.

tests/test_exercises.py proves that each check fails on its stub and passes on its solution (it
runs the pages). Here each exercise gets one or more *wrong* answers, written as a learner would
write them, with a one-line comment naming the slip; each test pins that the check rejects it
with a message that points at that slip. One test per section runs the exported solutions
through the checks, so a wrong fixture shows up as a failing sanity test."""

from __future__ import annotations

import einops
import pytest
import torch

from interpbook.checks import CheckFailed
from interpbook.checks.superposition import beyond_l1 as bl
from interpbook.checks.superposition import feature_geometry as fg
from interpbook.checks.superposition import privileged_basis as pb
from interpbook.checks.superposition import sparse_autoencoders as sa
from interpbook.checks.superposition import toy_model as tm
from interpbook.solutions.superposition import beyond_l1 as bl_sol
from interpbook.solutions.superposition import feature_geometry as fg_sol
from interpbook.solutions.superposition import privileged_basis as pb_sol
from interpbook.solutions.superposition import sparse_autoencoders as sa_sol
from interpbook.solutions.superposition import toy_model as tm_sol


def _subclass(base, **methods):
    return type(base.__name__, (base,), methods)


# ============================================================================================
# Section 1: The toy model


def test_toy_model_solutions_pass():
    tm.check_generate_batch(tm_sol.generate_batch)
    tm.check_toy_model(tm_sol.ToyModel)
    tm.check_importance_weighted_loss(tm_sol.importance_weighted_loss)
    tm.check_train_toy_model(tm_sol.train_toy_model, tm_sol.ToyModel)


def generate_batch_inverted(batch_size, feature_probability, n_features, generator=None):
    # Mistake: reads the feature probability as the probability of being zero.
    shape = (batch_size, len(feature_probability), n_features)
    values = torch.rand(shape, generator=generator)
    return values * (torch.rand(shape, generator=generator) >= feature_probability[:, None])


def generate_batch_one_mask_per_example(batch_size, feature_probability, n_features, generator=None):
    # Mistake: one random draw per example, so all features of an example are on or off together.
    shape = (batch_size, len(feature_probability), n_features)
    values = torch.rand(shape, generator=generator)
    on = torch.rand(batch_size, len(feature_probability), 1, generator=generator) < feature_probability[:, None]
    return values * on


def test_generate_batch_rejects_inverted_probability():
    with pytest.raises(CheckFailed, match=r"keep a feature where rand < p"):
        tm.check_generate_batch(generate_batch_inverted)


def test_generate_batch_rejects_shared_mask():
    with pytest.raises(CheckFailed, match=r"Draw one random number per feature"):
        tm.check_generate_batch(generate_batch_one_mask_per_example)


def _toy_forward(relu=True, bias=True, shared=False):
    def forward(self, features):
        W = self.W[:1].expand_as(self.W) if shared else self.W
        hidden = einops.einsum(features, W, "b i f, i h f -> b i h")
        out = einops.einsum(hidden, W, "b i h, i h f -> b i f") + (self.b_final if bias else 0)
        return torch.relu(out) if relu else out
    return forward


def test_toy_model_rejects_missing_relu():
    # Mistake: no ReLU on the output.
    with pytest.raises(CheckFailed, match=r"You left out the ReLU"):
        tm.check_toy_model(_subclass(tm_sol.ToyModel, forward=_toy_forward(relu=False)))


def test_toy_model_rejects_missing_bias():
    # Mistake: forgets b_final.
    with pytest.raises(CheckFailed, match=r"You left out the bias"):
        tm.check_toy_model(_subclass(tm_sol.ToyModel, forward=_toy_forward(bias=False)))


def test_toy_model_rejects_shared_weights():
    # Mistake: uses instance 0's weights for every instance.
    with pytest.raises(CheckFailed, match=r"use each instance's own W"):
        tm.check_toy_model(_subclass(tm_sol.ToyModel, forward=_toy_forward(shared=True)))


def test_importance_weighted_loss_rejects_mean_over_features():
    def loss(out, features, importance):
        # Mistake: averages over the features as well as the batch.
        return (importance * (features - out) ** 2).mean(-1).mean(0)

    with pytest.raises(CheckFailed, match=r"You averaged over the features too"):
        tm.check_importance_weighted_loss(loss)


def test_importance_weighted_loss_rejects_missing_importance():
    def loss(out, features, importance):
        # Mistake: forgets the importance weights.
        return ((features - out) ** 2).sum(-1).mean(0)

    with pytest.raises(CheckFailed, match=r"You left out the importance weights"):
        tm.check_importance_weighted_loss(loss)


def _train(model, feature_probability, importance, steps, batch_size=1024, lr=1e-3, seed=0, use_importance=True):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = tm_sol.generate_batch(batch_size, feature_probability, model.W.shape[-1], g)
        weights = importance if use_importance else torch.ones_like(importance)
        loss = tm_sol.importance_weighted_loss(model(x), x, weights).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_train_toy_model_rejects_ignored_importance():
    def train(model, feature_probability, importance, steps, batch_size=1024, lr=1e-3, seed=0):
        # Mistake: trains with uniform importance, ignoring the argument.
        return _train(model, feature_probability, importance, steps, batch_size, lr, seed, use_importance=False)

    with pytest.raises(CheckFailed, match=r"Pass the importance to importance_weighted_loss"):
        tm.check_train_toy_model(train, tm_sol.ToyModel)


def test_train_toy_model_rejects_no_optimiser_step():
    def train(model, feature_probability, importance, steps, batch_size=1024, lr=1e-3, seed=0):
        # Mistake: computes and records the loss but never steps the optimiser.
        g = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(steps):
            x = tm_sol.generate_batch(batch_size, feature_probability, model.W.shape[-1], g)
            out.append(tm_sol.importance_weighted_loss(model(x), x, importance).sum().item())
        return out

    with pytest.raises(CheckFailed, match=r"Do you take an optimiser step"):
        tm.check_train_toy_model(train, tm_sol.ToyModel)


# ============================================================================================
# Section 2: Feature geometry


def test_feature_geometry_solutions_pass():
    fg.check_dimensions_per_feature(fg_sol.dimensions_per_feature)
    fg.check_feature_dimensionality(fg_sol.feature_dimensionality)
    fg.check_classify_phase(fg_sol.classify_phase)


def test_dimensions_per_feature_rejects_feature_count():
    def dpf(W):
        # Mistake: divides the number of features instead of the hidden size.
        return W.shape[2] / W.pow(2).sum((1, 2))

    with pytest.raises(CheckFailed, match=r"use the hidden size m = W.shape\[1\]"):
        fg.check_dimensions_per_feature(dpf)


def test_dimensions_per_feature_rejects_unsquared_norms():
    def dpf(W):
        # Mistake: adds the column norms instead of the squared entries.
        return W.shape[1] / W.norm(dim=1).sum(-1)

    with pytest.raises(CheckFailed, match=r"Square the norms"):
        fg.check_dimensions_per_feature(dpf)


def test_feature_dimensionality_rejects_unnormalised_overlaps():
    def dims(W):
        # Mistake: uses W_i itself in the overlaps instead of the unit vector.
        overlaps = W.transpose(1, 2) @ W
        return W.norm(dim=1).pow(2) / (overlaps.pow(2).sum(-1) + 1e-8)

    with pytest.raises(CheckFailed, match=r"use the unit vector W_hat_i"):
        fg.check_feature_dimensionality(dims)


def test_feature_dimensionality_rejects_unsquared_overlaps():
    def dims(W):
        # Mistake: sums the overlaps before squaring, so an antipodal pair cancels.
        norms = W.norm(dim=1)
        overlaps = (W / (norms[:, None] + 1e-8)).transpose(1, 2) @ W
        return norms.pow(2) / overlaps.sum(-1).pow(2)

    with pytest.raises(CheckFailed, match=r"Square the overlaps before summing"):
        fg.check_feature_dimensionality(dims)


def test_classify_phase_rejects_signed_weights():
    def classify(W, threshold=0.5):
        # Mistake: compares the weights themselves with the threshold, so negative weights look dropped.
        stored = W[:, 0] >= threshold
        phase = torch.zeros(W.shape[0], dtype=torch.long)
        phase[stored[:, 1] & ~stored[:, 0]] = 1
        phase[stored[:, 0] & stored[:, 1]] = 2
        return phase

    with pytest.raises(CheckFailed, match=r"Compare the norm of each column with the threshold"):
        fg.check_classify_phase(classify)


# ============================================================================================
# Section 3: Privileged basis


def test_privileged_basis_solutions_pass():
    pb.check_relu_toy_model(pb_sol.ReLUToyModel)
    pb.check_features_per_neuron(pb_sol.features_per_neuron)
    pb.check_signed_batch(pb_sol.signed_batch)


def test_relu_toy_model_rejects_missing_hidden_relu():
    # Mistake: the section 1 forward pass, with no ReLU on the hidden layer.
    with pytest.raises(CheckFailed, match=r"apply the ReLU to the hidden layer too"):
        pb.check_relu_toy_model(_subclass(pb_sol.ReLUToyModel, forward=_toy_forward()))


def test_features_per_neuron_rejects_absolute_weights():
    def count(W, threshold=0.5):
        # Mistake: counts large negative weights too.
        return (W.abs() >= threshold).sum(-1)

    with pytest.raises(CheckFailed, match=r"You counted negative weights too"):
        pb.check_features_per_neuron(count)


def test_features_per_neuron_rejects_strict_inequality():
    def count(W, threshold=0.5):
        # Mistake: > instead of >=.
        return (W > threshold).sum(-1)

    with pytest.raises(CheckFailed, match=r"use >="):
        pb.check_features_per_neuron(count)


def test_signed_batch_rejects_unshifted_values():
    # Mistake: reuses generate_batch, so every value is non-negative.
    with pytest.raises(CheckFailed, match=r"Map u in \[0, 1\) to 2u - 1"):
        pb.check_signed_batch(tm_sol.generate_batch)


def test_signed_batch_rejects_shifted_zeros():
    def signed(batch_size, feature_probability, n_features, generator=None):
        # Mistake: shifts after masking, so inactive features become -1.
        return 2 * tm_sol.generate_batch(batch_size, feature_probability, n_features, generator) - 1

    with pytest.raises(CheckFailed, match=r"Inactive features came out as -1"):
        pb.check_signed_batch(signed)


# ============================================================================================
# Section 4: Sparse autoencoders


def test_sparse_autoencoder_solutions_pass():
    sa.check_sae(sa_sol.SAE)
    sa.check_sae_loss(sa_sol.sae_loss)
    sa.check_dead_latents(sa_sol.dead_latents)
    sa.check_resample_dead(sa_sol.resample_dead, sa_sol.SAE)
    sa.check_train_sae(sa_sol.train_sae, sa_sol.SAE)
    sa.check_feature_recovery(sa_sol.feature_recovery)


def test_sae_rejects_encoder_without_decoder_bias():
    def encode(self, h):
        # Mistake: encodes h itself instead of h - b_dec.
        return torch.relu(torch.einsum("bid,ids->bis", h, self.W_enc) + self.b_enc)

    with pytest.raises(CheckFailed, match=r"Subtract the decoder bias from h before encoding"):
        sa.check_sae(_subclass(sa_sol.SAE, encode=encode))


def test_sae_rejects_decoder_without_bias():
    def decode(self, f):
        # Mistake: forgets to add b_dec back.
        return torch.einsum("bis,isd->bid", f, self.W_dec)

    with pytest.raises(CheckFailed, match=r"Add the decoder bias b_dec after decoding"):
        sa.check_sae(_subclass(sa_sol.SAE, decode=decode))


def test_sae_loss_rejects_mean_over_d_in():
    def loss(h, recon, penalty, coeff):
        # Mistake: averages the squared error over d_in.
        return ((recon - h) ** 2).mean(-1).mean(0) + coeff * penalty.mean(0)

    with pytest.raises(CheckFailed, match=r"You averaged the squared error over d_in"):
        sa.check_sae_loss(loss)


def test_sae_loss_rejects_swapped_coefficients():
    def loss(h, recon, penalty, coeff):
        # Mistake: flips the coefficients, pairing them with the wrong instances.
        return ((recon - h) ** 2).sum(-1).mean(0) + coeff.flip(0) * penalty.mean(0)

    with pytest.raises(CheckFailed, match=r"coeff\[i\] multiplies instance i's penalty"):
        sa.check_sae_loss(loss)


def test_dead_latents_rejects_zero_somewhere():
    def dead(f):
        # Mistake: dead if zero on *some* example.
        return (f == 0).any(0)

    with pytest.raises(CheckFailed, match=r"zero on \*every\* example"):
        sa.check_dead_latents(dead)


@torch.no_grad()
def _resample(sae, h, dead, generator, normalise=True, reset_bias=True):
    recon, _ = sae(h)
    resid = h - recon
    for i in range(dead.shape[0]):
        idx = dead[i].nonzero().flatten()
        if len(idx) == 0:
            continue
        pick = torch.multinomial(resid[:, i].pow(2).sum(-1) + 1e-12, len(idx), replacement=True, generator=generator)
        d = resid[pick, i]
        if normalise:
            d = d / (d.norm(dim=-1, keepdim=True) + 1e-8)
        sae.W_dec[i, idx] = d
        sae.W_enc[i, :, idx] = 0.2 * d.T
        if reset_bias:
            sae.b_enc[i, idx] = 0.0


def test_resample_dead_rejects_unnormalised_rows():
    # Mistake: the new decoder rows are the raw residuals.
    with pytest.raises(CheckFailed, match=r"should be unit norm"):
        sa.check_resample_dead(lambda *a: _resample(*a, normalise=False), sa_sol.SAE)


def test_resample_dead_rejects_kept_bias():
    # Mistake: keeps the old (very negative) encoder bias.
    with pytest.raises(CheckFailed, match=r"reset it to 0"):
        sa.check_resample_dead(lambda *a: _resample(*a, reset_bias=False), sa_sol.SAE)


def test_resample_dead_rejects_resampling_everything():
    # Mistake: resamples every latent, live ones too.
    with pytest.raises(CheckFailed, match=r"only the dead latents are resampled"):
        sa.check_resample_dead(lambda sae, h, dead, g: _resample(sae, h, torch.ones_like(dead), g), sa_sol.SAE)


def _train_sae(sae, batches, steps, coeff, lr=1e-2, resample_every=0, seed=0, renormalise=True, resample=True):
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    fired = torch.zeros_like(sae.b_enc, dtype=torch.bool)
    losses = []
    for step in range(steps):
        h = batches()
        recon, f = sae(h)
        fired |= (f > 0).any(0)
        loss = sa_sol.sae_loss(h, recon, sae.penalty(f), coeff).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if renormalise:
            with torch.no_grad():
                sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True)
        losses.append(loss.item())
        if resample and resample_every and (step + 1) % resample_every == 0 and step + 1 < 0.8 * steps:
            sa_sol.resample_dead(sae, h, ~fired, gen)
            fired[:] = False
            opt = torch.optim.Adam(sae.parameters(), lr=lr)
    return losses


def test_train_sae_rejects_missing_renormalisation():
    # Mistake: never renormalises the decoder rows.
    with pytest.raises(CheckFailed, match=r"Divide W_dec by its row norms after every step"):
        sa.check_train_sae(lambda *a: _train_sae(*a, renormalise=False), sa_sol.SAE)


def test_train_sae_rejects_ignored_resampling():
    # Mistake: ignores resample_every.
    with pytest.raises(CheckFailed, match=r"pass the ones that did not to resample_dead"):
        sa.check_train_sae(lambda *a: _train_sae(*a, resample=False), sa_sol.SAE)


def test_feature_recovery_rejects_unnormalised_latents():
    def recovery(W_dec, W_true, threshold=0.9):
        # Mistake: dot products of the raw decoder rows.
        cos = W_dec @ (W_true / W_true.norm(dim=0, keepdim=True))
        return cos, float((cos.max(0).values >= threshold).float().mean())

    with pytest.raises(CheckFailed, match=r"Normalise the decoder rows first"):
        sa.check_feature_recovery(recovery)


def test_feature_recovery_rejects_absolute_cosines():
    def recovery(W_dec, W_true, threshold=0.9):
        # Mistake: counts an anti-aligned latent as a match.
        cos, _ = sa_sol.feature_recovery(W_dec, W_true, threshold)
        return cos, float((cos.abs().max(0).values >= threshold).float().mean())

    with pytest.raises(CheckFailed, match=r"not its absolute value"):
        sa.check_feature_recovery(recovery)


def test_feature_recovery_rejects_fraction_of_latents():
    def recovery(W_dec, W_true, threshold=0.9):
        # Mistake: the fraction of latents that match some feature.
        cos, _ = sa_sol.feature_recovery(W_dec, W_true, threshold)
        return cos, float((cos.max(1).values >= threshold).float().mean())

    with pytest.raises(CheckFailed, match=r"over the true features"):
        sa.check_feature_recovery(recovery)


# ============================================================================================
# Section 5: Beyond L1


def test_beyond_l1_solutions_pass():
    bl.check_topk_activation(bl_sol.topk_activation)
    bl.check_jumprelu(bl_sol.jumprelu)
    bl.check_l0_norm(bl_sol.l0_norm)
    bl.check_fraction_variance_unexplained(bl_sol.fraction_variance_unexplained)


def test_topk_activation_rejects_missing_relu():
    def topk(pre, k):
        # Mistake: ranks the raw pre-activations, keeping negative ones.
        ranks = pre.argsort(-1, descending=True).argsort(-1)
        return pre * (ranks < k[None, :, None])

    with pytest.raises(CheckFailed, match=r"apply the ReLU before choosing the top k"):
        bl.check_topk_activation(topk)


def test_topk_activation_rejects_one_k_for_all():
    def topk(pre, k):
        # Mistake: uses the first instance's k everywhere.
        values = torch.relu(pre)
        return values * (values.argsort(-1, descending=True).argsort(-1) < int(k[0]))

    with pytest.raises(CheckFailed, match=r"Each instance has its own k"):
        bl.check_topk_activation(topk)


def test_jumprelu_rejects_shifted_relu():
    # Mistake: ReLU(pre - threshold).
    with pytest.raises(CheckFailed, match=r"That is ReLU\(pre - threshold\)"):
        bl.check_jumprelu(lambda pre, threshold: torch.relu(pre - threshold))


def test_l0_norm_rejects_sum_over_batch():
    # Mistake: sums the counts over the batch.
    with pytest.raises(CheckFailed, match=r"You summed over the batch"):
        bl.check_l0_norm(lambda f: (f != 0).float().sum((0, 2)))


def test_fvu_rejects_uncentred_total():
    def fvu(h, recon):
        # Mistake: divides by the total of h^2, not the variance around the mean.
        return (h - recon).pow(2).sum((0, 2)) / h.pow(2).sum((0, 2))

    with pytest.raises(CheckFailed, match=r"Measure the total variance around the mean"):
        bl.check_fraction_variance_unexplained(fvu)
