"""The brackets chapter's checks reject the mistakes a learner would plausibly make.

tests/test_exercises.py already proves that each check fails on its stub and passes on its
solution (it runs the pages). Here each exercise gets one or more *wrong* answers, written as a
learner would write them, with a one-line comment naming the slip; the test pins both that the
check rejects it and that the message points at that slip. One test per section also runs the
exported solutions through the checks."""

from __future__ import annotations

import pytest
import torch

from interpbook.checks import CheckFailed, leftover_hooks
from interpbook.checks.brackets import breaking_it as bi
from interpbook.checks.brackets import model_and_task as mt
from interpbook.checks.brackets import two_conditions as tc
from interpbook.checks.brackets import working_backwards as wb
from interpbook.datasets import brackets as data
from interpbook.solutions.brackets import breaking_it as bi_sol
from interpbook.solutions.brackets import model_and_task as mt_sol
from interpbook.solutions.brackets import two_conditions as tc_sol
from interpbook.solutions.brackets import working_backwards as wb_sol
from interpbook.zoo import load_model

# ============================================================================================
# Section 1: the model and the task


def test_mt_solutions_pass():
    mt.check_is_balanced(mt_sol.is_balanced)
    mt.check_heights(mt_sol.heights)
    mt.check_balanced_from_heights(mt_sol.balanced_from_heights)
    mt.check_accuracy_by_class(mt_sol.accuracy_by_class)


# --- is_balanced ---


def mt_is_balanced_counts_only(s):
    # Mistake: only compares the counts of ( and ), never looks at the order.
    return s.count("(") == s.count(")")


def mt_is_balanced_parity_only(s):
    # Mistake: only checks that the length is even.
    return len(s) % 2 == 0


def mt_is_balanced_never_dips_only(s):
    # Mistake: checks the first condition and forgets that the height must end at zero.
    h = 0
    for c in s:
        h += 1 if c == "(" else -1
        if h < 0:
            return False
    return True


def mt_is_balanced_touching_zero(s):
    # Mistake: treats touching zero in the middle as a failure (h <= 0 instead of h < 0).
    h = 0
    for i, c in enumerate(s):
        h += 1 if c == "(" else -1
        if h < 0 or (h == 0 and i < len(s) - 1):
            return False
    return h == 0


def test_mt_is_balanced_rejects_counts_only():
    with pytest.raises(CheckFailed, match=r"Equal numbers of \( and \) are not enough"):
        mt.check_is_balanced(mt_is_balanced_counts_only)


def test_mt_is_balanced_rejects_parity_only():
    with pytest.raises(CheckFailed, match="same parity"):
        mt.check_is_balanced(mt_is_balanced_parity_only)


def test_mt_is_balanced_rejects_forgotten_final_height():
    with pytest.raises(CheckFailed, match="must also end at zero"):
        mt.check_is_balanced(mt_is_balanced_never_dips_only)


def test_mt_is_balanced_rejects_touching_zero():
    with pytest.raises(CheckFailed, match=r"may touch zero in the middle"):
        mt.check_is_balanced(mt_is_balanced_touching_zero)


# --- heights ---


def _mt_steps(tokens):
    return (tokens == data.OPEN).long() - (tokens == data.CLOSE).long()


def mt_heights_every_token(tokens, mask):
    # Mistake: every token that is not "(" counts as -1, [start] and [end] included.
    return torch.where(tokens == data.OPEN, 1, -1).cumsum(-1) * mask


def mt_heights_before(tokens, mask):
    # Mistake: off by one, the height before each position instead of after it.
    steps = _mt_steps(tokens)
    return (steps.cumsum(-1) - steps) * mask


def mt_heights_batch_axis(tokens, mask):
    # Mistake: cumsum over the batch axis.
    return _mt_steps(tokens).cumsum(0) * mask


def mt_heights_no_mask(tokens, mask):
    # Mistake: forgets the mask, so padding keeps the final height.
    return _mt_steps(tokens).cumsum(-1)


def test_mt_heights_rejects_counting_special_tokens():
    with pytest.raises(CheckFailed, match=r"\[start\] and \[end\] count as -1"):
        mt.check_heights(mt_heights_every_token)


def test_mt_heights_rejects_off_by_one():
    with pytest.raises(CheckFailed, match=r"one position behind: the height \*before\*"):
        mt.check_heights(mt_heights_before)


def test_mt_heights_rejects_batch_axis():
    with pytest.raises(CheckFailed, match=r"batch axis \(dim 0\)"):
        mt.check_heights(mt_heights_batch_axis)


def test_mt_heights_rejects_unmasked_padding():
    with pytest.raises(CheckFailed, match="multiply by the mask"):
        mt.check_heights(mt_heights_no_mask)


# --- balanced_from_heights ---


def mt_balanced_final_at_minus_one(h, mask):
    # Mistake: reads the final height at position -1, which is padding for shorter strings.
    return (h.min(-1).values >= 0) & (h[:, -1] == 0)


def mt_balanced_ignores_min(h, mask):
    # Mistake: forgets the first condition, checks only the final height.
    final = h.gather(-1, (mask.sum(-1) - 1)[:, None])[:, 0]
    return final == 0


def mt_balanced_min_strict(h, mask):
    # Mistake: requires the height to stay strictly positive, but [start] (and any return to zero) is 0.
    final = h.gather(-1, (mask.sum(-1) - 1)[:, None])[:, 0]
    inside = h[:, 1:].masked_fill(mask[:, 1:] == 0, 1)
    return (inside.min(-1).values > 0) & (final == 0)


def test_mt_balanced_rejects_position_minus_one():
    with pytest.raises(CheckFailed, match=r"position -1, which for a padded string is \[pad\]"):
        mt.check_balanced_from_heights(mt_balanced_final_at_minus_one)


def test_mt_balanced_rejects_ignored_minimum():
    with pytest.raises(CheckFailed, match=r"below zero .*require h.min\(dim=-1\) >= 0"):
        mt.check_balanced_from_heights(mt_balanced_ignores_min)


def test_mt_balanced_rejects_strict_minimum():
    with pytest.raises(CheckFailed, match="minimum allows 0"):
        mt.check_balanced_from_heights(mt_balanced_min_strict)


# --- accuracy_by_class ---


def mt_accuracy_no_mask(model, dataset, batch_size=500):
    # Mistake: forgets the attention mask.
    tokens, _ = dataset.tokens()
    preds = torch.cat([model(tokens[i : i + batch_size])[:, 0].argmax(-1)
                       for i in range(0, len(dataset), batch_size)])
    right = preds == dataset.labels
    return {c: right[torch.tensor([x == c for x in dataset.classes])].float().mean().item()
            for c in set(dataset.classes)}


def mt_accuracy_last_position(model, dataset, batch_size=500):
    # Mistake: reads the logits at the last position, as for a next-token model.
    tokens, mask = dataset.tokens()
    preds = torch.cat([model(tokens[i : i + batch_size], attention_mask=mask[i : i + batch_size])[:, -1].argmax(-1)
                       for i in range(0, len(dataset), batch_size)])
    right = preds == dataset.labels
    return {c: right[torch.tensor([x == c for x in dataset.classes])].float().mean().item()
            for c in set(dataset.classes)}


def mt_accuracy_one_batch(model, dataset, batch_size=500):
    # Mistake: ignores batch_size and runs everything at once.
    tokens, mask = dataset.tokens()
    right = model(tokens, attention_mask=mask)[:, 0].argmax(-1) == dataset.labels
    return {c: right[torch.tensor([x == c for x in dataset.classes])].float().mean().item()
            for c in set(dataset.classes)}


def mt_accuracy_overall(model, dataset, batch_size=500):
    # Mistake: reports the overall accuracy under every class.
    tokens, mask = dataset.tokens()
    preds = torch.cat([model(tokens[i : i + batch_size], attention_mask=mask[i : i + batch_size])[:, 0].argmax(-1)
                       for i in range(0, len(dataset), batch_size)])
    acc = (preds == dataset.labels).float().mean().item()
    return {c: acc for c in set(dataset.classes)}


def test_mt_accuracy_rejects_missing_mask():
    with pytest.raises(CheckFailed, match="without attention_mask"):
        mt.check_accuracy_by_class(mt_accuracy_no_mask)


def test_mt_accuracy_rejects_wrong_position():
    with pytest.raises(CheckFailed, match=r"not the one at position 0"):
        mt.check_accuracy_by_class(mt_accuracy_last_position)


def test_mt_accuracy_rejects_one_big_batch():
    with pytest.raises(CheckFailed, match="slices of at most batch_size"):
        mt.check_accuracy_by_class(mt_accuracy_one_batch)


def test_mt_accuracy_rejects_overall_accuracy():
    with pytest.raises(CheckFailed, match="average within each class"):
        mt.check_accuracy_by_class(mt_accuracy_overall)


# ============================================================================================
# Section 2: working backwards from the output


def test_wb_solutions_pass():
    wb.check_unbalanced_direction(wb_sol.unbalanced_direction)
    wb.check_fit_constant_scale(wb_sol.fit_constant_scale)
    wb.check_component_attributions(wb_sol.component_attributions)
    wb.check_neuron_attributions(wb_sol.neuron_attributions)


# --- unbalanced_direction ---


def wb_direction_reversed(W_U, ln_weight):
    # Mistake: balanced minus unbalanced (the columns in the wrong order).
    u = ln_weight * (W_U[:, 1] - W_U[:, 0])
    return u - u.mean()


def wb_direction_no_ln_weight(W_U, ln_weight):
    # Mistake: forgets that the LayerNorm's weight multiplies before W_U reads.
    d = W_U[:, 0] - W_U[:, 1]
    return d - d.mean()


def wb_direction_not_centred(W_U, ln_weight):
    # Mistake: forgets that the LayerNorm subtracts the mean first.
    return ln_weight * (W_U[:, 0] - W_U[:, 1])


def test_wb_direction_rejects_reversed_columns():
    with pytest.raises(CheckFailed, match=r"wrong way.*W_U\[:, 0\] - W_U\[:, 1\]"):
        wb.check_unbalanced_direction(wb_direction_reversed)


def test_wb_direction_rejects_missing_ln_weight():
    with pytest.raises(CheckFailed, match="ignores the LayerNorm's weight"):
        wb.check_unbalanced_direction(wb_direction_no_ln_weight)


def test_wb_direction_rejects_uncentred():
    with pytest.raises(CheckFailed, match="not centred"):
        wb.check_unbalanced_direction(wb_direction_not_centred)


# --- fit_constant_scale ---


def wb_fit_uncentred_r2(resid, logit_diff, u, const):
    # Mistake: R^2 against a baseline of zero instead of the mean logit difference.
    p = resid[:, 0] @ u
    a = (p * (logit_diff - const)).sum() / (p * p).sum()
    pred = const + a * p
    return (1 / a).item(), (1 - ((logit_diff - pred) ** 2).sum() / (logit_diff ** 2).sum()).item()


def wb_fit_last_position(resid, logit_diff, u, const):
    # Mistake: fits on the last position (as for a language model) instead of position 0.
    p = resid[:, -1] @ u
    a = (p * (logit_diff - const)).sum() / (p * p).sum()
    pred = const + a * p
    return (1 / a).item(), (1 - ((logit_diff - pred) ** 2).sum() / ((logit_diff - logit_diff.mean()) ** 2).sum()).item()


def wb_fit_returns_slope(resid, logit_diff, u, const):
    # Mistake: returns the least-squares slope instead of the scale the LayerNorm divides by.
    p = resid[:, 0] @ u
    a = (p * (logit_diff - const)).sum() / (p * p).sum()
    pred = const + a * p
    return a.item(), (1 - ((logit_diff - pred) ** 2).sum() / ((logit_diff - logit_diff.mean()) ** 2).sum()).item()


def test_wb_fit_rejects_uncentred_r2():
    with pytest.raises(CheckFailed, match="baseline is its mean"):
        wb.check_fit_constant_scale(wb_fit_uncentred_r2)


def test_wb_fit_rejects_last_position():
    with pytest.raises(CheckFailed, match=r"last position.*resid\[:, 0\]"):
        wb.check_fit_constant_scale(wb_fit_last_position)


def test_wb_fit_rejects_slope_for_scale():
    with pytest.raises(CheckFailed, match="slope 1/s0"):
        wb.check_fit_constant_scale(wb_fit_returns_slope)


# --- component_attributions ---


def _wb_vectors(cache, W_O, b_O, p, with_bias=True):
    vectors = [cache["hook_embed"][:, p], cache["hook_pos_embed"][:, p]]
    for layer in range(W_O.shape[0]):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, p]
        vectors += [z[:, h] @ W_O[layer, h] for h in range(W_O.shape[1])]
        if with_bias:
            vectors.append(b_O[layer].expand(len(z), -1))
        vectors.append(cache[f"blocks.{layer}.hook_mlp_out"][:, p])
    return torch.stack(vectors, 1)


def wb_attr_no_scale(cache, W_O, b_O, u):
    # Mistake: forgets to divide by the final LayerNorm's scale.
    return _wb_vectors(cache, W_O, b_O, 0) @ u


def wb_attr_last_position(cache, W_O, b_O, u):
    # Mistake: reads the last position, as for next-token prediction.
    return _wb_vectors(cache, W_O, b_O, -1) @ u / cache["ln_final.hook_scale"][:, -1, 0][:, None]


def wb_attr_no_bias(cache, W_O, b_O, u):
    # Mistake: leaves out b_O, so the columns no longer add up to the logit difference.
    return _wb_vectors(cache, W_O, b_O, 0, with_bias=False) @ u / cache["ln_final.hook_scale"][:, 0, 0][:, None]


def wb_attr_bias_zeroed(cache, W_O, b_O, u):
    # Mistake: keeps a b_O column but fills it with zeros ("a bias is not a component").
    out = _wb_vectors(cache, W_O, b_O, 0) @ u / cache["ln_final.hook_scale"][:, 0, 0][:, None]
    n_heads = W_O.shape[1]
    for layer in range(W_O.shape[0]):
        out[:, 2 + layer * (n_heads + 2) + n_heads] = 0
    return out


def test_wb_attr_rejects_missing_scale():
    with pytest.raises(CheckFailed, match="divide each component's projection on u by ln_final.hook_scale"):
        wb.check_component_attributions(wb_attr_no_scale)


def test_wb_attr_rejects_last_position():
    with pytest.raises(CheckFailed, match="last position.*position 0"):
        wb.check_component_attributions(wb_attr_last_position)


def test_wb_attr_rejects_dropped_bias():
    with pytest.raises(CheckFailed, match="leave out the attention bias b_O"):
        wb.check_component_attributions(wb_attr_no_bias)


def test_wb_attr_rejects_zeroed_bias():
    with pytest.raises(CheckFailed, match=r"b_O\[layer\]|sum of your attributions"):
        wb.check_component_attributions(wb_attr_bias_zeroed)


# --- neuron_attributions ---


def wb_neurons_no_scale(post, W_out, u, scale):
    # Mistake: forgets the LayerNorm scale.
    return post * (W_out @ u)


def wb_neurons_no_activation(post, W_out, u, scale):
    # Mistake: scores each neuron's output direction, ignoring whether it fires.
    return (W_out @ u / scale[:, None]).expand(post.shape)


def test_wb_neurons_reject_missing_scale():
    with pytest.raises(CheckFailed, match="not divided by the LayerNorm scale"):
        wb.check_neuron_attributions(wb_neurons_no_scale)


def test_wb_neurons_reject_ignoring_activations():
    with pytest.raises(CheckFailed, match="do not depend on the activations"):
        wb.check_neuron_attributions(wb_neurons_no_activation)


# ============================================================================================
# Section 3: the two conditions


@pytest.fixture(scope="module")
def tc_model():
    return load_model("brackets-classifier", device="cpu", profile="default")


def test_tc_solutions_pass(tc_model):
    tc.check_fraction_open(tc_sol.fraction_open)
    tc.check_probe_r2(tc_sol.probe_r2)
    tc.check_masked_mean(tc_sol.masked_mean)
    tc.check_mean_ablation_accuracy(tc_sol.mean_ablation_accuracy, tc_model)
    assert not leftover_hooks(tc_model)


# --- fraction_open ---


def tc_fraction_open_over_mask(tokens, mask):
    # Mistake: divides by mask.sum(), which also counts [start] and [end].
    return (tokens == data.OPEN).sum(-1).float() / mask.sum(-1).float()


def tc_fraction_open_over_row(tokens, mask):
    # Mistake: divides by the padded row length, so the pads count as brackets.
    return (tokens == data.OPEN).sum(-1).float() / tokens.shape[1]


def tc_fraction_open_close(tokens, mask):
    # Mistake: counts the wrong token id (')' is data.CLOSE).
    n = ((tokens == data.OPEN) | (tokens == data.CLOSE)).sum(-1).float()
    return (tokens == data.CLOSE).sum(-1).float() / n.clamp(min=1)


def tc_fraction_open_nan(tokens, mask):
    # Mistake: no clamp, so the empty string gives 0 / 0.
    n = ((tokens == data.OPEN) | (tokens == data.CLOSE)).sum(-1).float()
    return (tokens == data.OPEN).sum(-1).float() / n


def test_tc_fraction_open_rejects_mask_count():
    with pytest.raises(CheckFailed, match=r"mask.sum\(-1\).*\[start\] and \[end\]"):
        tc.check_fraction_open(tc_fraction_open_over_mask)


def test_tc_fraction_open_rejects_padded_length():
    with pytest.raises(CheckFailed, match="number of bracket tokens"):
        tc.check_fraction_open(tc_fraction_open_over_row)


def test_tc_fraction_open_rejects_close_share():
    with pytest.raises(CheckFailed, match=r"share of '\)', not of '\('"):
        tc.check_fraction_open(tc_fraction_open_close)


def test_tc_fraction_open_rejects_nan():
    with pytest.raises(CheckFailed, match="NaN.*clamped to at least 1"):
        tc.check_fraction_open(tc_fraction_open_nan)


# --- probe_r2 ---


def _tc_design(X):
    return torch.cat([X.double(), torch.ones(len(X), 1, dtype=torch.float64)], 1)


def tc_probe_r2_train_rows(X, y):
    # Mistake: scores the fit on the same (even) rows it was fitted on.
    A, y = _tc_design(X), y.double()
    w = torch.linalg.lstsq(A[::2], y[::2, None]).solution[:, 0]
    p, t = A[::2] @ w, y[::2]
    return (1 - ((t - p) ** 2).sum() / ((t - t.mean()) ** 2).sum()).item()


def tc_probe_r2_no_intercept(X, y):
    # Mistake: no column of ones, so the fit is forced through the origin.
    A, y = X.double(), y.double()
    w = torch.linalg.lstsq(A[::2], y[::2, None]).solution[:, 0]
    p, t = A[1::2] @ w, y[1::2]
    return (1 - ((t - p) ** 2).sum() / ((t - t.mean()) ** 2).sum()).item()


def tc_probe_r2_float32(X, y):
    # Mistake: stays in float32, as the activations come.
    A = torch.cat([X, torch.ones(len(X), 1)], 1)
    w = torch.linalg.lstsq(A[::2], y[::2, None]).solution[:, 0]
    p, t = A[1::2] @ w, y[1::2]
    return (1 - ((t - p) ** 2).sum() / ((t - t.mean()) ** 2).sum()).item()


def tc_probe_r2_all_rows_mean(X, y):
    # Mistake: R^2 denominator uses the mean of all of y, not of the held-out rows.
    A, y = _tc_design(X), y.double()
    w = torch.linalg.lstsq(A[::2], y[::2, None]).solution[:, 0]
    p, t = A[1::2] @ w, y[1::2]
    return (1 - ((t - p) ** 2).sum() / ((t - y.mean()) ** 2).sum()).item()


def test_tc_probe_r2_rejects_training_rows():
    with pytest.raises(CheckFailed, match="scored the fit on the rows it was fitted to"):
        tc.check_probe_r2(tc_probe_r2_train_rows)


def test_tc_probe_r2_rejects_missing_intercept():
    with pytest.raises(CheckFailed, match="forget the intercept"):
        tc.check_probe_r2(tc_probe_r2_no_intercept)


def test_tc_probe_r2_rejects_float32():
    with pytest.raises(CheckFailed, match=r"float64 \(\.double\(\)\)"):
        tc.check_probe_r2(tc_probe_r2_float32)


def test_tc_probe_r2_rejects_wrong_mean():
    with pytest.raises(CheckFailed, match="mean of the odd rows"):
        tc.check_probe_r2(tc_probe_r2_all_rows_mean)


# --- masked_mean ---


def tc_masked_mean_with_pads(act, mask):
    # Mistake: a plain mean over the batch, padding rows included.
    return act.mean(0)


def tc_masked_mean_total_count(act, mask):
    # Mistake: divides by the batch size instead of the real rows at each position.
    w = mask.view(*mask.shape, *[1] * (act.ndim - 2)).to(act.dtype)
    return (act * w).sum(0) / act.shape[0]


def tc_masked_mean_nan(act, mask):
    # Mistake: no clamp, so a position with no real row is 0 / 0.
    w = mask.view(*mask.shape, *[1] * (act.ndim - 2)).to(act.dtype)
    return (act * w).sum(0) / w.sum(0)


def tc_masked_mean_3d_only(act, mask):
    # Mistake: the mask is broadcast over one trailing axis only, so hook_z's shape breaks.
    w = mask[..., None].to(act.dtype)
    return (act * w).sum(0) / w.sum(0).clamp(min=1)


def test_tc_masked_mean_rejects_pads():
    with pytest.raises(CheckFailed, match=r"includes the padding positions"):
        tc.check_masked_mean(tc_masked_mean_with_pads)


def test_tc_masked_mean_rejects_batch_size_count():
    with pytest.raises(CheckFailed, match="only over the rows whose mask is 1"):
        tc.check_masked_mean(tc_masked_mean_total_count)


def test_tc_masked_mean_rejects_nan():
    with pytest.raises(CheckFailed, match="NaN where no row has a real token"):
        tc.check_masked_mean(tc_masked_mean_nan)


def test_tc_masked_mean_rejects_fixed_broadcast():
    with pytest.raises(CheckFailed, match=r"raised RuntimeError|\[4, 3, 2, 5\]"):
        tc.check_masked_mean(tc_masked_mean_3d_only)


# --- mean_ablation_accuracy ---


def _tc_accuracy(logits, labels, classes):
    correct = (logits[:, 0].argmax(-1).cpu() == labels.cpu()).float()
    return torch.stack([correct[[c == n for c in classes]].mean() for n in data.CLASSES])


def _tc_ablate(model, tokens, mask, labels, classes, hook_name, head, mean, all_heads=False):
    def hook(act, hook):
        if head is None:
            return mean.expand_as(act).clone()
        if all_heads:
            act[:] = mean
        else:
            act[:, :, head] = mean[:, head]
        return act

    logits = model.run_with_hooks(tokens, attention_mask=mask, fwd_hooks=[(hook_name, hook)])
    return _tc_accuracy(logits, labels, classes)


def tc_ablation_pads_in_mean(model, tokens, mask, labels, classes, hook_name, head=None):
    # Mistake: the mean over the batch includes the padding positions.
    _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=hook_name)
    return _tc_ablate(model, tokens, mask, labels, classes, hook_name, head, cache[hook_name].mean(0))


def tc_ablation_zero(model, tokens, mask, labels, classes, hook_name, head=None):
    # Mistake: zero-ablation instead of mean-ablation.
    _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=hook_name)
    zero = torch.zeros_like(cache[hook_name][0])
    return _tc_ablate(model, tokens, mask, labels, classes, hook_name, head, zero)


def tc_ablation_every_head(model, tokens, mask, labels, classes, hook_name, head=None):
    # Mistake: replaces the whole hook_z, every head of the layer, not just `head`.
    _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=hook_name)
    mean = tc_sol.masked_mean(cache[hook_name], mask)
    return _tc_ablate(model, tokens, mask, labels, classes, hook_name, head, mean, all_heads=True)


def tc_ablation_leaves_hook(model, tokens, mask, labels, classes, hook_name, head=None):
    # Mistake: attaches the hook with add_hook and never removes it.
    _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=hook_name)
    mean = tc_sol.masked_mean(cache[hook_name], mask)

    def hook(act, hook):
        if head is None:
            return mean.expand_as(act).clone()
        act[:, :, head] = mean[:, head]
        return act

    model.add_hook(hook_name, hook)
    return _tc_accuracy(model(tokens, attention_mask=mask), labels, classes)


def test_tc_mean_ablation_rejects_pads_in_mean(tc_model):
    with pytest.raises(CheckFailed, match=r"mean over\s+the batch of real \(unmasked\) rows"):
        tc.check_mean_ablation_accuracy(tc_ablation_pads_in_mean, tc_model)
    assert not leftover_hooks(tc_model)


def test_tc_mean_ablation_rejects_zero_ablation(tc_model):
    with pytest.raises(CheckFailed, match="do\nnot set it to zero|not set it to zero"):
        tc.check_mean_ablation_accuracy(tc_ablation_zero, tc_model)


def test_tc_mean_ablation_rejects_every_head(tc_model):
    with pytest.raises(CheckFailed, match="leave the other head alone"):
        tc.check_mean_ablation_accuracy(tc_ablation_every_head, tc_model)


def test_tc_mean_ablation_rejects_leftover_hook(tc_model):
    with pytest.raises(CheckFailed, match="hooks were still attached"):
        tc.check_mean_ablation_accuracy(tc_ablation_leaves_hook, tc_model)
    assert not leftover_hooks(tc_model)


# ============================================================================================
# Section 4: breaking it


def test_bi_solutions_pass():
    bi.check_margin(bi_sol.margin)
    bi.check_mountain_grid(bi_sol.mountain_grid)
    bi.check_dip_then_nest(bi_sol.dip_then_nest)
    bi.check_worst_member(bi_sol.worst_member)


def test_bi_fake_model_matches_its_formula():
    strings = ["", "(()", ")("]
    tokens, mask = data.tokenize(strings)
    logits = bi.FakeBracketsModel()(tokens, attention_mask=mask)[:, 0]
    expected = torch.tensor([bi.FakeBracketsModel.expected_logits(s) for s in strings])
    assert torch.allclose(logits, expected)


# --- margin ---


def _bi_truth(strings):
    return torch.tensor([data.is_balanced(s) for s in strings])


def bi_margin_no_mask(model, strings):
    # Mistake: runs the model without the attention mask, so it attends to the padding.
    tokens, _ = data.tokenize(list(strings))
    logits = model(tokens)[:, 0]
    d = logits[:, 1] - logits[:, 0]
    return torch.where(_bi_truth(strings), d, -d)


def bi_margin_unbalanced_minus_balanced(model, strings):
    # Mistake: a fixed sign convention, unbalanced − balanced, instead of correct − wrong.
    tokens, mask = data.tokenize(list(strings))
    logits = model(tokens, attention_mask=mask)[:, 0]
    return logits[:, 0] - logits[:, 1]


def bi_margin_balanced_minus_unbalanced(model, strings):
    # Mistake: a fixed sign convention, balanced − unbalanced, for every string.
    tokens, mask = data.tokenize(list(strings))
    logits = model(tokens, attention_mask=mask)[:, 0]
    return logits[:, 1] - logits[:, 0]


def bi_margin_wrong_minus_correct(model, strings):
    # Mistake: the difference the wrong way round (wrong − correct).
    tokens, mask = data.tokenize(list(strings))
    logits = model(tokens, attention_mask=mask)[:, 0]
    d = logits[:, 1] - logits[:, 0]
    return torch.where(_bi_truth(strings), -d, d)


def bi_margin_last_position(model, strings):
    # Mistake: reads the logits at the last position, as for a next-token model.
    tokens, mask = data.tokenize(list(strings))
    logits = model(tokens, attention_mask=mask)[:, -1]
    d = logits[:, 1] - logits[:, 0]
    return torch.where(_bi_truth(strings), d, -d)


def test_bi_margin_rejects_forgotten_mask():
    with pytest.raises(CheckFailed, match="without `attention_mask=`"):
        bi.check_margin(bi_margin_no_mask)


def test_bi_margin_rejects_unbalanced_minus_balanced():
    with pytest.raises(CheckFailed, match=r"logit\(unbalanced\) − logit\(balanced\) for every string"):
        bi.check_margin(bi_margin_unbalanced_minus_balanced)


def test_bi_margin_rejects_balanced_minus_unbalanced():
    with pytest.raises(CheckFailed, match=r"logit\(balanced\) − logit\(unbalanced\) for every string"):
        bi.check_margin(bi_margin_balanced_minus_unbalanced)


def test_bi_margin_rejects_flipped_sign():
    with pytest.raises(CheckFailed, match="opposite sign"):
        bi.check_margin(bi_margin_wrong_minus_correct)


def test_bi_margin_rejects_wrong_position():
    with pytest.raises(CheckFailed, match=r"position 0.*logits\[:, 0\]"):
        bi.check_margin(bi_margin_last_position)


# --- mountain_grid ---


def bi_mountain_grid_strict(max_len):
    # Mistake: off by one, `<` instead of `<=`, so the longest (tallest) strings are missing.
    return {(a, b): "(" * a + ")" * a + "(" * b + ")" * b
            for a in range(1, max_len) for b in range(1, max_len) if 2 * (a + b) < max_len}


def bi_mountain_grid_too_long(max_len):
    # Mistake: lets each mountain be up to max_len // 2 high, ignoring the total length.
    return {(a, b): "(" * a + ")" * a + "(" * b + ")" * b
            for a in range(1, max_len // 2 + 1) for b in range(1, max_len // 2 + 1)}


def bi_mountain_grid_short_close(max_len):
    # Mistake: off by one in the closing run, one `)` short on each mountain.
    return {(a, b): "(" * a + ")" * (a - 1) + "(" * b + ")" * (b - 1)
            for a in range(1, max_len) for b in range(1, max_len) if 2 * (a + b) <= max_len}


def test_bi_mountain_grid_rejects_strict_length():
    with pytest.raises(CheckFailed, match=r"missing .* all of exactly 6 characters.*≤, not <"):
        bi.check_mountain_grid(bi_mountain_grid_strict)


def test_bi_mountain_grid_rejects_too_long():
    with pytest.raises(CheckFailed, match="longer than 6 characters"):
        bi.check_mountain_grid(bi_mountain_grid_too_long)


def test_bi_mountain_grid_rejects_short_closing_run():
    with pytest.raises(CheckFailed, match=r"mountain_grid\(6\)\[\(1, 1\)\] is '\(\('; expected '\(\)\(\)'"):
        bi.check_mountain_grid(bi_mountain_grid_short_close)


# --- dip_then_nest ---


def bi_dip_then_nest_from_one(max_len):
    # Mistake: starts k at 1, leaving out the members without a nest.
    return {(j, k): "()" * j + ")(" + "(" * k + ")" * k
            for j in range(max_len) for k in range(1, max_len) if 2 * j + 2 + 2 * k <= max_len}


def bi_dip_then_nest_no_dip(max_len):
    # Mistake: joins with "()" instead of ")(", so there is no dip and every member is balanced.
    return {(j, k): "()" * j + "()" + "(" * k + ")" * k
            for j in range(max_len) for k in range(max_len) if 2 * j + 2 + 2 * k <= max_len}


def bi_dip_then_nest_forgets_dip_length(max_len):
    # Mistake: counts only 2j + 2k characters, forgetting the two of the dip, so some exceed max_len.
    return {(j, k): "()" * j + ")(" + "(" * k + ")" * k
            for j in range(max_len) for k in range(max_len) if 2 * j + 2 * k <= max_len}


def test_bi_dip_then_nest_rejects_missing_k0():
    with pytest.raises(CheckFailed, match="no member with k = 0"):
        bi.check_dip_then_nest(bi_dip_then_nest_from_one)


def test_bi_dip_then_nest_rejects_no_dip():
    with pytest.raises(CheckFailed, match=r"is balanced.*`\)\(` \(close, then open\)"):
        bi.check_dip_then_nest(bi_dip_then_nest_no_dip)


def test_bi_dip_then_nest_rejects_too_long():
    with pytest.raises(CheckFailed, match="longer than 4 characters"):
        bi.check_dip_then_nest(bi_dip_then_nest_forgets_dip_length)


# --- worst_member ---


def bi_worst_member_argmax(model, family):
    # Mistake: argmax, the member the model is most sure about, instead of the most negative margin.
    keys = list(family)
    m = bi_sol.margin(model, [family[k] for k in keys])
    return keys[int(m.argmax())], m.max().item()


def bi_worst_member_index(model, family):
    # Mistake: returns the position in the family rather than the key that names the member.
    keys = list(family)
    m = bi_sol.margin(model, [family[k] for k in keys])
    return int(m.argmin()), m.min().item()


def test_bi_worst_member_rejects_argmax():
    with pytest.raises(CheckFailed, match="argmin, not argmax"):
        bi.check_worst_member(bi_worst_member_argmax)


def test_bi_worst_member_rejects_index():
    with pytest.raises(CheckFailed, match="return its key"):
        bi.check_worst_member(bi_worst_member_index)
