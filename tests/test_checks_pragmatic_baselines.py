"""Section 4 of the pragmatic chapter ("Baselines, honestly"): each check fails on its stub,
passes on the exported solution, and rejects the mistakes a learner would plausibly make, with
a message that names the slip."""

from __future__ import annotations

import pytest
import torch

from interpbook.checks import CheckFailed
from interpbook.checks.pragmatic import baselines as checks
from interpbook.solutions.pragmatic import baselines as sol


def _stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("name", checks.__all__)
def test_checks_fail_on_the_stub(name):
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        getattr(checks, name)(_stub)


def test_solutions_pass():
    checks.check_best_single_latent(sol.best_single_latent)
    checks.check_sparse_probe_features(sol.sparse_probe_features)
    checks.check_mean_difference(sol.mean_difference)
    checks.check_steering_hook(sol.steering_hook)
    checks.check_vocab_mass(sol.vocab_mass)


# --- best_single_latent -----------------------------------------------------------------------


def best_latent_by_mean_on_positives(f, y):
    # Mistake: the latent with the largest mean activation on the positives, whatever it does
    # on the negatives.
    i = int(f[y == 1].mean(0).argmax())
    return i, 0.0


def _best_f1_over_thresholds(f, pos):
    vals, order = f.sort(dim=0, descending=True)
    tp = pos.float()[order].cumsum(0)
    n_pred = torch.arange(1, len(pos) + 1)[:, None]
    f1 = 2 * tp / (n_pred + pos.sum())
    below = torch.cat([vals[1:], vals[-1:] - 1])
    f1 = torch.where(vals > below, f1, torch.zeros_like(f1))
    best_f1, rank = f1.max(0)
    i = int(best_f1.argmax())
    return i, vals, below, rank[i]


def best_latent_unlabelled_as_positives(f, y):
    # Mistake: `y.bool()` makes the -1 tokens positives.
    i, vals, below, j = _best_f1_over_thresholds(f, y.bool())
    return i, float((vals[j, i] + below[j, i]) / 2)


def best_latent_unlabelled_as_negatives(f, y):
    # Mistake: every token that is not a positive is a negative, the -1 tokens included.
    i, vals, below, j = _best_f1_over_thresholds(f, y == 1)
    return i, float((vals[j, i] + below[j, i]) / 2)


def best_latent_threshold_is_last_value_kept(f, y):
    # Mistake: returns the smallest activation counted as positive, which `f > threshold`
    # then leaves out.
    keep = y != -1
    i, vals, below, j = _best_f1_over_thresholds(f[keep], y[keep] == 1)
    return i, float(vals[j, i])


@pytest.mark.parametrize("wrong, match", [
    (best_latent_by_mean_on_positives, "dense decoy"),
    (best_latent_unlabelled_as_positives, r"unlabelled tokens \(y == -1\)"),
    (best_latent_unlabelled_as_negatives, r"unlabelled tokens \(y == -1\)"),
    (best_latent_threshold_is_last_value_kept, "strict `>`"),
])
def test_best_single_latent_rejects(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_best_single_latent(wrong)


# --- sparse_probe_features --------------------------------------------------------------------


def features_largest_mean(f, y, k):
    # Mistake: the latents that are largest on average, not the ones that tell the classes apart.
    return f.mean(0).topk(k).indices


def features_unlabelled_as_negatives(f, y, k):
    # Mistake: `y != 1` as the negatives, so the -1 tokens count as negatives.
    diff = f[y == 1].mean(0) - f[y != 1].mean(0)
    return diff.abs().topk(k).indices


def features_signed(f, y, k):
    # Mistake (against this page's choice): only latents that fire *more* on the positives.
    keep = y != -1
    diff = f[keep][y[keep] == 1].mean(0) - f[keep][y[keep] == 0].mean(0)
    return diff.topk(k).indices


@pytest.mark.parametrize("wrong, match", [
    (features_largest_mean, r"largest mean activation.*\*difference\*"),
    (features_unlabelled_as_negatives, "fires only on unlabelled tokens"),
    (features_signed, r"\*absolute\* difference"),
])
def test_sparse_probe_features_rejects(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_sparse_probe_features(wrong)


# --- mean_difference --------------------------------------------------------------------------


def mean_difference_reversed(acts, y):
    # Mistake: negatives minus positives.
    return acts[y == 0].mean(0) - acts[y == 1].mean(0)


def mean_difference_unlabelled_as_negatives(acts, y):
    # Mistake: "not a positive" taken as a negative.
    return acts[y == 1].mean(0) - acts[y != 1].mean(0)


def mean_difference_minus_overall_mean(acts, y):
    # Mistake: subtracts the mean of every token rather than of the negatives.
    return acts[y == 1].mean(0) - acts.mean(0)


@pytest.mark.parametrize("wrong, match", [
    (mean_difference_reversed, "wrong way"),
    (mean_difference_unlabelled_as_negatives, r"unlabelled tokens \(y == -1\) as negatives"),
    (mean_difference_minus_overall_mean, "mean of all tokens"),
])
def test_mean_difference_rejects(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_mean_difference(wrong)


# --- steering_hook ----------------------------------------------------------------------------


def steering_hook_not_normalised(direction, scale):
    # Mistake: adds scale * direction, so the length of the direction changes the strength.
    def hook(resid, hook):
        out = resid.clone()
        out[:, 1:] += scale * direction
        return out
    return hook


def steering_hook_with_bos(direction, scale):
    # Mistake: steers BOS as well.
    unit = direction / direction.norm()

    def hook(resid, hook):
        return resid + scale * unit
    return hook


def steering_hook_rebinds(direction, scale):
    # Mistake: builds the steered tensor and forgets to return it.
    unit = direction / direction.norm()

    def hook(resid, hook):
        resid = resid + scale * unit  # noqa: F841  (a new local tensor, dropped)
    return hook


def steering_hook_normalises_in_place(direction, scale):
    # Mistake: `/=` changes the caller's direction tensor.
    direction /= direction.norm()

    def hook(resid, hook):
        out = resid.clone()
        out[:, 1:] += scale * direction
        return out
    return hook


@pytest.mark.parametrize("wrong, match", [
    (steering_hook_not_normalised, "normalise the direction"),
    (steering_hook_with_bos, "changed position 0"),
    (steering_hook_rebinds, "returned None and left the residual stream unchanged"),
    (steering_hook_normalises_in_place, "changed the `direction` tensor"),
])
def test_steering_hook_rejects(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_steering_hook(wrong)


def steering_hook_in_place(direction, scale):
    # Accepted: adds in place and returns the same tensor (TransformerLens uses what it returns).
    unit = direction / direction.norm()

    def hook(resid, hook):
        resid[:, 1:] += scale * unit
        return resid
    return hook


def steering_hook_in_place_no_return(direction, scale):
    # Accepted: in place without a return; TransformerLens keeps an in-place change.
    unit = direction / direction.norm()

    def hook(resid, hook):
        resid[:, 1:] += scale * unit
    return hook


@pytest.mark.parametrize("ok", [steering_hook_in_place, steering_hook_in_place_no_return])
def test_steering_hook_accepts_in_place(ok):
    checks.check_steering_hook(ok)


def test_in_place_without_return_steers_a_real_model():
    # Why the check accepts it: TransformerLens keeps an in-place change when the hook returns None.
    from interpbook.zoo import load_model

    model = load_model("gpt-mini", shipped=True)
    tokens = torch.tensor([[0, 5, 9, 12]])
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    name = "blocks.2.hook_resid_pre"
    with torch.no_grad():
        a = model.run_with_hooks(tokens, fwd_hooks=[(name, steering_hook_in_place_no_return(direction, 30.0))])
        b = model.run_with_hooks(tokens, fwd_hooks=[(name, sol.steering_hook(direction, 30.0))])
        clean = model(tokens)
    assert torch.allclose(a, b, atol=1e-4)
    assert torch.allclose(a[:, 0], clean[:, 0], atol=1e-4)
    assert not torch.allclose(a[:, 1:], clean[:, 1:], atol=1e-2)


# --- vocab_mass -------------------------------------------------------------------------------


def vocab_mass_of_logits(logits, vocab):
    # Mistake: sums the logits themselves.
    return logits[..., vocab].sum(-1)


def vocab_mass_of_log_probs(logits, vocab):
    # Mistake: sums log-probabilities.
    return logits.log_softmax(-1)[..., vocab].sum(-1)


def vocab_mass_softmax_over_positions(logits, vocab):
    # Mistake: softmax over the position axis.
    return logits.softmax(1)[..., vocab].sum(-1)


@pytest.mark.parametrize("wrong, match", [
    (vocab_mass_of_logits, "summed the logits"),
    (vocab_mass_of_log_probs, "summed log-probabilities"),
    (vocab_mass_softmax_over_positions, "position axis"),
])
def test_vocab_mass_rejects(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_vocab_mass(wrong)
