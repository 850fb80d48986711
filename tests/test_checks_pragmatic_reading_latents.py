"""Section 2 of the pragmatic chapter, "Reading latents": its checks fail on the stubs, pass on
the exported solutions, and reject the mistakes a learner would plausibly make, each written as
a named function with a comment naming the slip, with a message that points at that slip."""

from __future__ import annotations

import pytest
import torch

from interpbook.checks import CheckFailed
from interpbook.checks.pragmatic import reading_latents as checks
from interpbook.solutions.pragmatic import reading_latents as sol


def _stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("name", checks.__all__)
def test_check_fails_on_stub(name):
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        getattr(checks, name)(_stub)


def test_solutions_pass():
    checks.check_top_activations(sol.top_activations)
    checks.check_latent_logit_effect(sol.latent_logit_effect)
    checks.check_top_token_rule(sol.top_token_rule)
    checks.check_explanation_score(sol.explanation_score)


# --- top_activations ---------------------------------------------------------------------------

def top_activations_wrong_width(acts, k):
    # Mistake: unravels the flat index by the number of windows instead of the number of positions.
    flat = acts.flatten().topk(k).indices
    n_windows = acts.shape[0]
    return torch.stack([flat // n_windows, flat % n_windows], dim=-1)


def top_activations_smallest(acts, k):
    # Mistake: topk's default is fine, but this sorts ascending and takes the first k.
    flat = acts.flatten().argsort()[:k]
    return torch.stack([flat // acts.shape[1], flat % acts.shape[1]], dim=-1)


def top_activations_ascending(acts, k):
    # Mistake: finds the right cells but lists them smallest first.
    flat = acts.flatten().topk(k).indices.flip(0)
    return torch.stack([flat // acts.shape[1], flat % acts.shape[1]], dim=-1)


def top_activations_one_per_window(acts, k):
    # Mistake: takes each window's maximum, then the top windows: two maxima in one window are lost.
    best, pos = acts.max(dim=1)
    windows = best.topk(k).indices
    return torch.stack([windows, pos[windows]], dim=-1)


def top_activations_pos_first(acts, k):
    # Mistake: returns (position, window) pairs.
    flat = acts.flatten().topk(k).indices
    return torch.stack([flat % acts.shape[1], flat // acts.shape[1]], dim=-1)


@pytest.mark.parametrize("wrong, message", [
    (top_activations_wrong_width, r"wrong width.*divmod\(index, n_pos\)"),
    (top_activations_smallest, r"\*smallest\*"),
    (top_activations_ascending, r"ascending order"),
    (top_activations_one_per_window, r"one position per window"),
    (top_activations_pos_first, r"\(position, window\)"),
])
def test_top_activations_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_top_activations(wrong)


# --- latent_logit_effect -------------------------------------------------------------------------

def logit_effect_encoder(sae, W_U, latent):
    # Mistake: uses the encoder column (when the latent fires) instead of the decoder row (what it writes).
    return sae.W_enc[:, latent] @ W_U


def logit_effect_with_bias(sae, W_U, latent):
    # Mistake: decodes a one-hot latent vector with sae.decode, which adds b_dec.
    f = torch.zeros(sae.W_dec.shape[0])
    f[latent] = 1.0
    return sae.decode(f) @ W_U


def logit_effect_transposed(sae, W_U, latent):
    # Mistake: multiplies in the wrong order (runs only when d_model == d_vocab).
    return W_U @ sae.W_dec[latent]


def logit_effect_decoder_column(sae, W_U, latent):
    # Mistake: indexes W_dec as if it were [d_model, d_sae].
    return sae.W_dec[:, latent] @ W_U


@pytest.mark.parametrize("wrong, message", [
    (logit_effect_encoder, r"encoder column"),
    (logit_effect_with_bias, r"decoder bias b_dec"),
    (logit_effect_transposed, r"W_U @ W_dec\[latent\]"),
    (logit_effect_decoder_column, r"column of W_dec"),
])
def test_latent_logit_effect_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_latent_logit_effect(wrong)


# --- top_token_rule ------------------------------------------------------------------------------

def _token_means(acts, tokens):
    d_vocab = int(tokens.max()) + 1
    counts = torch.bincount(tokens, minlength=d_vocab)
    sums = torch.zeros(d_vocab, acts.shape[1]).index_add_(0, tokens, acts)
    return sums, counts


def rule_single_max(acts, tokens, min_count=10):
    # Mistake: explains the latent by the token at its single largest activation.
    return tokens[acts.argmax(0)]


def rule_ignores_min_count(acts, tokens, min_count=10):
    # Mistake: forgets min_count, so a token seen twice can win.
    sums, counts = _token_means(acts, tokens)
    means = sums / counts.clamp_min(1)[:, None]
    means[counts == 0] = -torch.inf
    return means.argmax(0)


def rule_total(acts, tokens, min_count=10):
    # Mistake: ranks tokens by their total activation, which favours frequent tokens.
    sums, counts = _token_means(acts, tokens)
    sums[counts < min_count] = -torch.inf
    return sums.argmax(0)


def rule_mean_where_fires(acts, tokens, min_count=10):
    # Mistake: averages only over the occurrences where the latent fires.
    fires = (acts > 0).float()
    d_vocab = int(tokens.max()) + 1
    sums = torch.zeros(d_vocab, acts.shape[1]).index_add_(0, tokens, acts)
    n_fire = torch.zeros(d_vocab, acts.shape[1]).index_add_(0, tokens, fires)
    counts = torch.bincount(tokens, minlength=d_vocab)
    means = sums / n_fire.clamp_min(1)
    means[counts < min_count] = -torch.inf
    return means.argmax(0)


def rule_fixed_min_count(acts, tokens, min_count=10):
    # Mistake: hard-codes the threshold instead of using the argument.
    return sol.top_token_rule(acts, tokens, min_count=10)


@pytest.mark.parametrize("wrong, message", [
    (rule_single_max, r"single largest activation"),
    (rule_ignores_min_count, r"fewer than\s+min_count"),
    (rule_total, r"\*total\* activation"),
    (rule_mean_where_fires, r"zeros included"),
    (rule_fixed_min_count, r"Use the min_count argument"),
])
def test_top_token_rule_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_top_token_rule(wrong)


# --- explanation_score ---------------------------------------------------------------------------

def _counts(predicted, fires):
    tp = (predicted & fires).sum(0).float()
    fp = (predicted & ~fires).sum(0).float()
    fn = (~predicted & fires).sum(0).float()
    return tp, fp, fn


def score_precision(predicted, acts):
    # Mistake: reports the precision, not the F1.
    tp, fp, _ = _counts(predicted, acts > 0)
    return tp / (tp + fp).clamp_min(1)


def score_recall(predicted, acts):
    # Mistake: reports the recall, not the F1.
    tp, _, fn = _counts(predicted, acts > 0)
    return tp / (tp + fn).clamp_min(1)


def score_accuracy(predicted, acts):
    # Mistake: the fraction of tokens where rule and latent agree, dominated by true negatives.
    return (predicted == (acts > 0)).float().mean(0)


def score_threshold_at_mean(predicted, acts):
    # Mistake: counts the latent as firing only above its mean activation.
    tp, fp, fn = _counts(predicted, acts > acts.mean(0))
    return 2 * tp / (2 * tp + fp + fn).clamp_min(1)


def score_nan_when_empty(predicted, acts):
    # Mistake: divides by 2 TP + FP + FN without guarding the latent with no positives at all.
    tp, fp, fn = _counts(predicted, acts > 0)
    return 2 * tp / (2 * tp + fp + fn)


@pytest.mark.parametrize("wrong, message", [
    (score_precision, r"that is the precision"),
    (score_recall, r"that is the recall"),
    (score_accuracy, r"that is the accuracy"),
    (score_threshold_at_mean, r"thresholded the activations at their mean"),
    (score_nan_when_empty, r"returned NaN"),
])
def test_explanation_score_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_explanation_score(wrong)
