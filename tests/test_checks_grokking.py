"""The grokking chapter's checks reject the mistakes a learner would plausibly make.

tests/test_exercises.py proves that each check fails on its stub and passes on its solution (it
runs the pages). Here each exercise gets one or more *wrong* answers, written as a learner would
write them, with a one-line comment naming the slip; each test pins both that the check rejects
it and that the message points at that slip. One test per section runs the exported solutions
through the checks, so a wrong fixture shows up as a failing sanity test rather than as a wrong
answer that "passes"."""

from __future__ import annotations

import math

import pytest
import torch

from interpbook.checks import CheckFailed
from interpbook.checks.grokking import activations_as_trigonometry as act
from interpbook.checks.grokking import fourier_embedding as fe
from interpbook.checks.grokking import grokking_live as live
from interpbook.checks.grokking import the_algorithm as alg
from interpbook.checks.grokking import training_dynamics as td
from interpbook.solutions.grokking import activations_as_trigonometry as act_sol
from interpbook.solutions.grokking import fourier_embedding as fe_sol
from interpbook.solutions.grokking import grokking_live as live_sol
from interpbook.solutions.grokking import the_algorithm as alg_sol
from interpbook.solutions.grokking import training_dynamics as td_sol
from interpbook.zoo import load_model


@pytest.fixture(scope="module")
def model():
    return load_model("modular-addition", device="cpu", profile="default")


# ============================================================================================
# Section 1: Periodicity in the embedding


def test_fourier_embedding_solutions_pass():
    fe.check_fourier_basis(fe_sol.fourier_basis)
    fe.check_fourier_coefficients(fe_sol.fourier_coefficients)
    fe.check_frequency_norms(fe_sol.frequency_norms)
    fe.check_key_frequencies(fe_sol.key_frequencies)


def _basis_rows(p, scale_const, scale_wave, freq_offset=0, cos_first=True):
    x = torch.arange(p, dtype=torch.float64)
    rows, names = [torch.full((p,), scale_const, dtype=torch.float64)], ["const"]
    for k in range(1, (p - 1) // 2 + 1):
        angle = 2 * math.pi * (k + freq_offset) * x / p
        pair = [scale_wave * torch.cos(angle), scale_wave * torch.sin(angle)]
        rows += pair if cos_first else pair[::-1]
        names += [f"cos {k}", f"sin {k}"]
    return torch.stack(rows).float(), names


def fourier_basis_unnormalised(p):
    # Mistake: leaves out the 1/sqrt(p) and sqrt(2/p) scale factors.
    return _basis_rows(p, 1.0, 1.0)


def fourier_basis_frequency_from_zero(p):
    # Mistake: the loop variable starts at 0, so "cos 1" is really frequency 0 (and so on).
    return _basis_rows(p, 1 / math.sqrt(p), math.sqrt(2 / p), freq_offset=-1)


def fourier_basis_sin_first(p):
    # Mistake: appends the sine before the cosine of each frequency.
    return _basis_rows(p, 1 / math.sqrt(p), math.sqrt(2 / p), cos_first=False)


def fourier_basis_float64(p):
    # Mistake: forgets the final .float(), returning float64.
    basis, names = fe_sol.fourier_basis(p)
    return basis.double(), names


def test_fourier_basis_rejects_missing_normalisation():
    with pytest.raises(CheckFailed, match=r"orthogonal but their lengths.*1/sqrt\(p\).*sqrt\(2/p\)"):
        fe.check_fourier_basis(fourier_basis_unnormalised)


def test_fourier_basis_rejects_frequency_off_by_one():
    with pytest.raises(CheckFailed, match=r"row 1 \('cos 1'\).*Is the frequency right \(k, not k - 1"):
        fe.check_fourier_basis(fourier_basis_frequency_from_zero)


def test_fourier_basis_rejects_sine_before_cosine():
    with pytest.raises(CheckFailed, match=r"row 1 \('cos 1'\).*sqrt\(2/p\) \* cos"):
        fe.check_fourier_basis(fourier_basis_sin_first)


def test_fourier_basis_rejects_float64():
    with pytest.raises(CheckFailed, match=r"dtype torch.float64; expected torch.float32"):
        fe.check_fourier_basis(fourier_basis_float64)


def fourier_coefficients_transposed(x, basis):
    # Mistake: multiplies by the transpose of the basis (reads the basis vectors as columns).
    return basis.T @ x


def test_fourier_coefficients_rejects_transposed_basis():
    with pytest.raises(CheckFailed, match=r"basis @ x, not basis\.T @ x"):
        fe.check_fourier_coefficients(fourier_coefficients_transposed)


def frequency_norms_added(coefficients):
    # Mistake: adds the norms of the cos and sin rows instead of their squares.
    norms = coefficients.norm(dim=-1)
    return torch.cat([norms[:1], norms[1:].view(-1, 2).sum(-1)])


def frequency_norms_squared(coefficients):
    # Mistake: forgets the final square root.
    squares = coefficients.pow(2).sum(-1)
    return torch.cat([squares[:1], squares[1:].view(-1, 2).sum(-1)])


def frequency_norms_misaligned(coefficients):
    # Mistake: pairs rows (0, 1), (2, 3), ... and leaves the last row on its own.
    squares = coefficients.pow(2).sum(-1)
    return torch.cat([squares[:-1].view(-1, 2).sum(-1), squares[-1:]]).sqrt()


def test_frequency_norms_rejects_adding_norms():
    with pytest.raises(CheckFailed, match=r"sqrt\(9 \+ 16\) = 5, not 3 \+ 4 = 7"):
        fe.check_frequency_norms(frequency_norms_added)


def test_frequency_norms_rejects_squared_norms():
    with pytest.raises(CheckFailed, match=r"These are the squared norms"):
        fe.check_frequency_norms(frequency_norms_squared)


def test_frequency_norms_rejects_misaligned_pairs():
    with pytest.raises(CheckFailed, match=r"rows are paired wrongly: row 0 is the constant alone"):
        fe.check_frequency_norms(frequency_norms_misaligned)


def key_frequencies_stops_early(norms, share=0.8):
    # Mistake: keeps only the frequencies *before* the running share reaches `share`.
    squares = norms.pow(2)
    order = squares.argsort(descending=True)
    running = squares[order].cumsum(0) / squares.sum()
    return sorted(int(k) for k in order[: max(int((running < share).sum()), 1)])


def key_frequencies_unsquared(norms, share=0.8):
    # Mistake: measures each frequency's share with its norm, not its squared norm.
    order = norms.argsort(descending=True)
    running = norms[order].cumsum(0) / norms.sum()
    return sorted(int(k) for k in order[: int((running < share).sum()) + 1])


def key_frequencies_unsorted(norms, share=0.8):
    # Mistake: returns the frequencies largest first instead of sorted.
    squares = norms.pow(2)
    order = squares.argsort(descending=True)
    running = squares[order].cumsum(0) / squares.sum()
    return [int(k) for k in order[: int((running < share).sum()) + 1]]


def test_key_frequencies_rejects_stopping_before_the_share():
    with pytest.raises(CheckFailed, match=r"keep the frequency that makes the running share reach"):
        fe.check_key_frequencies(key_frequencies_stops_early)


def test_key_frequencies_rejects_unsquared_norms():
    with pytest.raises(CheckFailed, match=r"add the norms instead of their squares"):
        fe.check_key_frequencies(key_frequencies_unsquared)


def test_key_frequencies_rejects_unsorted_output():
    with pytest.raises(CheckFailed, match=r"should be sorted from smallest to largest"):
        fe.check_key_frequencies(key_frequencies_unsorted)


# ============================================================================================
# Section 2: Activations as trigonometry


def test_activations_solutions_pass():
    act.check_activation_grid(act_sol.activation_grid)
    act.check_fourier_2d(act_sol.fourier_2d)
    act.check_frequency_share(act_sol.frequency_share)
    act.check_neuron_clusters(act_sol.neuron_clusters)


def activation_grid_first_position(activations, p):
    # Mistake: takes position 0 (the token a) instead of the last position.
    return activations[:, 0].reshape(p, p, -1)


def activation_grid_swapped(activations, p):
    # Mistake: puts b on the first axis.
    return activations[:, -1].reshape(p, p, -1).transpose(0, 1)


def test_activation_grid_rejects_first_position():
    with pytest.raises(CheckFailed, match=r"You took position 0"):
        act.check_activation_grid(activation_grid_first_position)


def test_activation_grid_rejects_swapped_axes():
    with pytest.raises(CheckFailed, match=r"a and b are swapped"):
        act.check_activation_grid(activation_grid_swapped)


def fourier_2d_one_axis(grid, basis):
    # Mistake: transforms the a axis only.
    return torch.einsum("ia,abd->ibd", basis, grid)


def fourier_2d_swapped(grid, basis):
    # Mistake: the output indices come out as [j, i].
    return torch.einsum("ia,jb,abd->jid", basis, basis, grid)


def test_fourier_2d_rejects_one_axis():
    with pytest.raises(CheckFailed, match=r"transform both axes"):
        act.check_fourier_2d(fourier_2d_one_axis)


def test_fourier_2d_rejects_swapped_output():
    with pytest.raises(CheckFailed, match=r"Your result is transposed"):
        act.check_fourier_2d(fourier_2d_swapped)


def _allowed(p, k):
    allowed = torch.zeros(p, dtype=torch.bool)
    allowed[[0, 2 * k - 1, 2 * k]] = True
    return allowed


def frequency_share_mean_in_total(coeffs, k):
    # Mistake: leaves the (const, const) term, the mean, in the denominator.
    allowed = _allowed(coeffs.shape[0], k)
    terms = allowed[:, None] & allowed[None, :]
    terms[0, 0] = False
    squares = coeffs.pow(2)
    return squares[terms].sum(0) / squares.sum((0, 1))


def frequency_share_cross_terms(coeffs, k):
    # Mistake: counts every term with frequency k on *either* axis, cross-frequency terms too.
    allowed = _allowed(coeffs.shape[0], k)
    terms = allowed[:, None] | allowed[None, :]
    terms[0, 0] = False
    squares = coeffs.pow(2)
    return squares[terms].sum(0) / (squares.sum((0, 1)) - squares[0, 0])


def test_frequency_share_rejects_mean_in_denominator():
    with pytest.raises(CheckFailed, match=r"leave \(const, const\) out of the denominator too"):
        act.check_frequency_share(frequency_share_mean_in_total)


def test_frequency_share_rejects_cross_frequency_terms():
    with pytest.raises(CheckFailed, match=r"mixes two frequencies.*Both indices must be const, cos k or sin k"):
        act.check_frequency_share(frequency_share_cross_terms)


def neuron_clusters_zero_based(shares, min_share=0.5):
    # Mistake: uses the row index as the frequency (forgets the + 1).
    best = shares.max(0)
    out = {}
    for n, (row, s) in enumerate(zip(best.indices.tolist(), best.values.tolist())):
        if s >= min_share:
            out.setdefault(row, []).append(n)
    return out


def neuron_clusters_no_threshold(shares, min_share=0.5):
    # Mistake: ignores min_share, so every neuron joins a cluster.
    best = shares.max(0)
    out = {}
    for n, row in enumerate(best.indices.tolist()):
        out.setdefault(row + 1, []).append(n)
    return out


def test_neuron_clusters_rejects_zero_based_frequencies():
    with pytest.raises(CheckFailed, match=r"Row i is frequency i \+ 1"):
        act.check_neuron_clusters(neuron_clusters_zero_based)


def test_neuron_clusters_rejects_missing_threshold():
    with pytest.raises(CheckFailed, match=r"below min_share = 0.5: it belongs to no cluster"):
        act.check_neuron_clusters(neuron_clusters_no_threshold)


# ============================================================================================
# Section 3: The algorithm


def test_algorithm_solutions_pass(model):
    alg.check_neuron_logit_map(alg_sol.neuron_logit_map, model)
    alg.check_trig_logits(alg_sol.trig_logits)
    alg.check_fraction_explained(alg_sol.fraction_explained)
    alg.check_keep_frequencies_2d(alg_sol.keep_frequencies_2d)


def neuron_logit_map_w_in(model):
    # Mistake: uses W_in (what the neurons read) instead of W_out (what they write).
    return model.W_in[0].T @ model.W_U


def test_neuron_logit_map_rejects_w_in(model):
    with pytest.raises(CheckFailed, match=r"You used W_in"):
        alg.check_neuron_logit_map(neuron_logit_map_w_in, model)


def _trig(p, freqs, angle_of):
    x = torch.arange(p, dtype=torch.float64)
    a, b, c = x[:, None, None], x[None, :, None], x[None, None, :]
    return sum(torch.cos(angle_of(k, a, b, c)) for k in freqs).float()


def trig_logits_no_two_pi(p, freqs):
    # Mistake: uses k (a + b - c) as the angle, without 2 pi / p.
    return _trig(p, freqs, lambda k, a, b, c: k * (a + b - c))


def trig_logits_plus_c(p, freqs):
    # Mistake: adds c instead of subtracting it.
    return _trig(p, freqs, lambda k, a, b, c: 2 * math.pi * k * (a + b + c) / p)


def test_trig_logits_rejects_missing_two_pi_over_p():
    with pytest.raises(CheckFailed, match=r"Check the angle: 2 pi k / p"):
        alg.check_trig_logits(trig_logits_no_two_pi)


def test_trig_logits_rejects_a_plus_b_plus_c():
    with pytest.raises(CheckFailed, match=r"times \(a \+ b - c\)"):
        alg.check_trig_logits(trig_logits_plus_c)


def fraction_explained_uncentred(logits, approx):
    # Mistake: compares the raw logits, without removing each row's mean.
    alpha = (logits * approx).sum() / approx.pow(2).sum()
    return float(1 - (logits - alpha * approx).pow(2).sum() / logits.pow(2).sum())


def fraction_explained_no_scale(logits, approx):
    # Mistake: centres both but assumes the scale is 1.
    L = logits - logits.mean(-1, keepdim=True)
    T = approx - approx.mean(-1, keepdim=True)
    return float(1 - (L - T).pow(2).sum() / L.pow(2).sum())


def fraction_explained_centres_logits_only(logits, approx):
    # Mistake: centres the logits but not the approximation.
    L = logits - logits.mean(-1, keepdim=True)
    alpha = (L * approx).sum() / approx.pow(2).sum()
    return float(1 - (L - alpha * approx).pow(2).sum() / L.pow(2).sum())


def test_fraction_explained_rejects_uncentred():
    with pytest.raises(CheckFailed, match=r"subtract each row's mean over c"):
        alg.check_fraction_explained(fraction_explained_uncentred)


def test_fraction_explained_rejects_missing_scale():
    with pytest.raises(CheckFailed, match=r"fit the best scale alpha instead of using 1"):
        alg.check_fraction_explained(fraction_explained_no_scale)


def test_fraction_explained_rejects_uncentred_approximation():
    with pytest.raises(CheckFailed, match=r"Centre the approximation too"):
        alg.check_fraction_explained(fraction_explained_centres_logits_only)


def _keep_mask(p, freqs, with_const=True):
    keep = torch.zeros(p, dtype=torch.bool)
    keep[0] = with_const
    for k in freqs:
        keep[[2 * k - 1, 2 * k]] = True
    return keep


def keep_frequencies_2d_no_const(grid, basis, freqs):
    # Mistake: keeps only the key-frequency terms, dropping the constant row and column.
    keep = _keep_mask(grid.shape[0], freqs, with_const=False)
    coeffs = act_sol.fourier_2d(grid, basis) * (keep[:, None] & keep[None, :])[..., None]
    return torch.einsum("ia,jb,ijd->abd", basis, basis, coeffs)


def keep_frequencies_2d_either_axis(grid, basis, freqs):
    # Mistake: keeps a term when either of its indices is kept.
    keep = _keep_mask(grid.shape[0], freqs)
    coeffs = act_sol.fourier_2d(grid, basis) * (keep[:, None] | keep[None, :])[..., None]
    return torch.einsum("ia,jb,ijd->abd", basis, basis, coeffs)


def keep_frequencies_2d_no_inverse(grid, basis, freqs):
    # Mistake: returns the kept coefficients without transforming back.
    keep = _keep_mask(grid.shape[0], freqs)
    return act_sol.fourier_2d(grid, basis) * (keep[:, None] & keep[None, :])[..., None]


def test_keep_frequencies_2d_rejects_dropped_constant():
    with pytest.raises(CheckFailed, match=r"You dropped the constant row and column"):
        alg.check_keep_frequencies_2d(keep_frequencies_2d_no_const)


def test_keep_frequencies_2d_rejects_either_axis():
    with pytest.raises(CheckFailed, match=r"use & between the two masks"):
        alg.check_keep_frequencies_2d(keep_frequencies_2d_either_axis)


def test_keep_frequencies_2d_rejects_missing_inverse():
    with pytest.raises(CheckFailed, match=r"transform them back to the \(a, b\) grid"):
        alg.check_keep_frequencies_2d(keep_frequencies_2d_no_inverse)


# ============================================================================================
# Section 4: Training dynamics


def test_training_dynamics_solutions_pass():
    td.check_sum_directions(td_sol.sum_directions)
    td.check_split_logits(td_sol.split_logits)
    td.check_weight_norm(td_sol.weight_norm)
    td.check_phase_boundaries(td_sol.phase_boundaries)


def _waves(p, freqs, value_of, normalise=True):
    a = torch.arange(p, dtype=torch.float64).repeat_interleave(p)
    b = torch.arange(p, dtype=torch.float64).repeat(p)
    rows = []
    for k in freqs:
        angle = 2 * math.pi * k * value_of(a, b) / p
        for w in (torch.cos(angle), torch.sin(angle)):
            rows.append(w / w.norm() if normalise else w)
    return torch.stack(rows).float()


def sum_directions_unnormalised(p, freqs):
    # Mistake: forgets to scale the waves to unit norm.
    return _waves(p, freqs, lambda a, b: a + b, normalise=False)


def sum_directions_difference(p, freqs):
    # Mistake: uses a - b.
    return _waves(p, freqs, lambda a, b: a - b)


def sum_directions_problem_index(p, freqs):
    # Mistake: uses the problem's index a * p + b instead of a + b.
    return _waves(p, freqs, lambda a, b: a * p + b)


def test_sum_directions_rejects_unnormalised():
    with pytest.raises(CheckFailed, match=r"should have norm 1.*Divide each wave by its norm"):
        td.check_sum_directions(sum_directions_unnormalised)


def test_sum_directions_rejects_a_minus_b():
    with pytest.raises(CheckFailed, match=r"That is a wave in a - b"):
        td.check_sum_directions(sum_directions_difference)


def test_sum_directions_rejects_problem_index():
    with pytest.raises(CheckFailed, match=r"Use a \+ b, the sum of the two numbers"):
        td.check_sum_directions(sum_directions_problem_index)


def split_logits_no_means(logits, directions):
    # Mistake: the restricted logits are the projection alone, without the column means.
    projection = directions.T @ (directions @ logits)
    return projection, logits - projection


def split_logits_excluded_centred(logits, directions):
    # Mistake: also removes the column means from the excluded logits.
    projection = directions.T @ (directions @ logits)
    mean = logits.mean(0, keepdim=True)
    return projection + mean, logits - projection - mean


def split_logits_swapped(logits, directions):
    # Mistake: returns (excluded, restricted).
    projection = directions.T @ (directions @ logits)
    return logits - projection, projection + logits.mean(0, keepdim=True)


def test_split_logits_rejects_missing_means():
    with pytest.raises(CheckFailed, match=r"You left out the column means"):
        td.check_split_logits(split_logits_no_means)


def test_split_logits_rejects_centred_excluded():
    with pytest.raises(CheckFailed, match=r"You removed the column means too"):
        td.check_split_logits(split_logits_excluded_centred)


def test_split_logits_rejects_swapped_outputs():
    with pytest.raises(CheckFailed, match=r"restricted and excluded are swapped"):
        td.check_split_logits(split_logits_swapped)


def weight_norm_sum_of_norms(state_dict):
    # Mistake: adds each tensor's norm.
    return float(sum(t.norm() for t in state_dict.values()))


def weight_norm_squared(state_dict):
    # Mistake: forgets the square root.
    return float(sum(t.pow(2).sum() for t in state_dict.values()))


def test_weight_norm_rejects_sum_of_norms():
    with pytest.raises(CheckFailed, match=r"sum of each tensor's norm"):
        td.check_weight_norm(weight_norm_sum_of_norms)


def test_weight_norm_rejects_squared_norm():
    with pytest.raises(CheckFailed, match=r"That is the squared norm"):
        td.check_weight_norm(weight_norm_squared)


def phase_boundaries_from_start(curves, p):
    # Mistake: looks for the test loss below chance from the start of training.
    e = curves["epoch"]
    memorised = next(x for x, acc in zip(e, curves["train_acc"]) if acc >= 1.0)
    cleanup = next(x for x, loss in zip(e, curves["test_loss"]) if loss < math.log(p))
    done = next(x for x, acc in zip(e, curves["test_acc"]) if acc >= 0.999)
    return memorised, cleanup, done


def phase_boundaries_indices(curves, p):
    # Mistake: returns positions in the lists instead of epochs.
    memorised = next(i for i, acc in enumerate(curves["train_acc"]) if acc >= 1.0)
    cleanup = next(i for i, loss in enumerate(curves["test_loss"]) if i > memorised and loss < math.log(p))
    done = next(i for i, acc in enumerate(curves["test_acc"]) if acc >= 0.999)
    return memorised, cleanup, done


def phase_boundaries_99(curves, p):
    # Mistake: ends cleanup at 99 % test accuracy instead of 99.9 %.
    e = curves["epoch"]
    memorised = next(x for x, acc in zip(e, curves["train_acc"]) if acc >= 1.0)
    cleanup = next(x for x, loss in zip(e, curves["test_loss"]) if x > memorised and loss < math.log(p))
    done = next(x for x, acc in zip(e, curves["test_acc"]) if acc >= 0.99)
    return memorised, cleanup, done


def test_phase_boundaries_rejects_search_from_start():
    with pytest.raises(CheckFailed, match=r"look for the start of cleanup only after memorisation"):
        td.check_phase_boundaries(phase_boundaries_from_start)


def test_phase_boundaries_rejects_list_positions():
    with pytest.raises(CheckFailed, match=r"Those are positions in the lists"):
        td.check_phase_boundaries(phase_boundaries_indices)


def test_phase_boundaries_rejects_99_percent():
    with pytest.raises(CheckFailed, match=r"0.99 at epoch 70 is not yet 0.999"):
        td.check_phase_boundaries(phase_boundaries_99)


# ============================================================================================
# Input validation: a wrong shape or type gets a message that says what was expected


def test_wrong_shape_is_named():
    def activation_grid_flat(activations, p):
        # Mistake: returns the last position without folding it into a grid.
        return activations[:, -1]

    with pytest.raises(CheckFailed, match=r"has shape \[25, 2\]; expected \[5, 5, 2\] = \[a, b, d\]"):
        act.check_activation_grid(activation_grid_flat)


def test_learner_exception_shows_the_inputs():
    def fourier_coefficients_matmul_wrong_side(x, basis):
        # Mistake: x @ basis, which fails for d != p.
        return x @ basis

    with pytest.raises(CheckFailed, match=r"raised RuntimeError.*a tensor of shape \[7, 1\]"):
        fe.check_fourier_coefficients(fourier_coefficients_matmul_wrong_side)


# ============================================================================================
# Section 5: Grokking live


def test_grokking_live_solutions_pass():
    live.check_mod_add_mlp(live_sol.ModAddMLP)
    live.check_train_mlp(live_sol.train_mlp)


def _mlp_class(forward):
    return type("ModAddMLP", (live_sol.ModAddMLP,), {"forward": forward})


def test_mod_add_mlp_rejects_missing_relu():
    def forward(self, a, b):
        # Mistake: no ReLU, so the network is linear.
        return torch.cat([self.embed[a], self.embed[b]], -1) @ self.W_in @ self.W_out

    with pytest.raises(CheckFailed, match=r"You left out the ReLU"):
        live.check_mod_add_mlp(_mlp_class(forward))


def test_mod_add_mlp_rejects_b_first():
    def forward(self, a, b):
        # Mistake: concatenates b's embedding before a's.
        return torch.relu(torch.cat([self.embed[b], self.embed[a]], -1) @ self.W_in) @ self.W_out

    with pytest.raises(CheckFailed, match=r"concatenated the wrong way round"):
        live.check_mod_add_mlp(_mlp_class(forward))


def test_mod_add_mlp_reports_summed_embeddings():
    def forward(self, a, b):
        # Mistake: adds the two embeddings, so the input has d_embed columns, not 2 * d_embed.
        return torch.relu((self.embed[a] + self.embed[b]) @ self.W_in) @ self.W_out

    with pytest.raises(CheckFailed, match=r"raised RuntimeError.*a = \[3, 1, 4, 0\]"):
        live.check_mod_add_mlp(_mlp_class(forward))


def _train(a, b, labels, train_idx, test_idx, steps, lr, weight_decay, log_every, model,
           last=True, test_on_train=False, decay=True):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay if decay else 0.01,
                            betas=(0.9, 0.98))
    eval_idx = train_idx if test_on_train else test_idx
    curves = {k: [] for k in ("step", "train_loss", "test_loss", "train_acc", "test_acc")}
    for step in range(steps + 1 if last else steps):
        logits = model(a[train_idx], b[train_idx])
        loss = torch.nn.functional.cross_entropy(logits, labels[train_idx])
        if step % log_every == 0:
            with torch.no_grad():
                t = model(a[eval_idx], b[eval_idx])
                curves["step"].append(step)
                curves["train_loss"].append(loss.item())
                curves["test_loss"].append(torch.nn.functional.cross_entropy(t, labels[eval_idx]).item())
                curves["train_acc"].append((logits.argmax(-1) == labels[train_idx]).float().mean().item())
                curves["test_acc"].append((t.argmax(-1) == labels[eval_idx]).float().mean().item())
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return curves


def train_mlp_no_final_log(model, a, b, labels, train_idx, test_idx, steps, lr=1e-2, weight_decay=1.0,
                           log_every=50):
    # Mistake: loops over range(steps), so the model after the last update is never logged.
    return _train(a, b, labels, train_idx, test_idx, steps, lr, weight_decay, log_every, model, last=False)


def train_mlp_test_on_train(model, a, b, labels, train_idx, test_idx, steps, lr=1e-2, weight_decay=1.0,
                            log_every=50):
    # Mistake: computes the "test" metrics on the training problems.
    return _train(a, b, labels, train_idx, test_idx, steps, lr, weight_decay, log_every, model,
                  test_on_train=True)


def train_mlp_default_decay(model, a, b, labels, train_idx, test_idx, steps, lr=1e-2, weight_decay=1.0,
                            log_every=50):
    # Mistake: never passes weight_decay to AdamW, which then uses its default of 0.01.
    return _train(a, b, labels, train_idx, test_idx, steps, lr, weight_decay, log_every, model, decay=False)


def test_train_mlp_rejects_missing_final_log():
    with pytest.raises(CheckFailed, match=r"The last entry is missing: log at step 120 too"):
        live.check_train_mlp(train_mlp_no_final_log)


def test_train_mlp_rejects_test_metrics_on_train_split():
    with pytest.raises(CheckFailed, match=r"against labels\[test_idx\]"):
        live.check_train_mlp(train_mlp_test_on_train)


def test_train_mlp_rejects_ignored_weight_decay():
    with pytest.raises(CheckFailed, match=r"Pass weight_decay to torch.optim.AdamW"):
        live.check_train_mlp(train_mlp_default_decay)
