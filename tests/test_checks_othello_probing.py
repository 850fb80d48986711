"""The checks of othello section 2 (probing): each fails on its stub, passes on the exported
solution, and rejects plausible wrong answers with a message that names the mistake."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F
from _check_suite import check_suite

from interpbook.checks import CheckFailed
from interpbook.checks.othello import probing as checks
from interpbook.solutions.othello.probing import (
    accuracy_by_square,
    majority_baseline,
    occupied_accuracy,
    relative_states,
    train_board_probe,
)

SOLUTIONS = {
    "relative_states": relative_states,
    "majority_baseline": majority_baseline,
    "train_board_probe": train_board_probe,
    "accuracy_by_square": accuracy_by_square,
    "occupied_accuracy": occupied_accuracy,
}


test_check_fails_on_the_stub, test_check_passes_on_the_solution, test_every_check_is_tested = check_suite(
    checks, SOLUTIONS)


# --- relative_states --------------------------------------------------------------------------

def rel_last_mover(boards, next_player):
    # Mistake: relative to the player who just moved (the opposite colour), so mine/theirs swap.
    rel = boards.long() * (-next_player.long())[:, None]
    return torch.where(rel == 0, 0, torch.where(rel == 1, 1, 2))


def rel_signed(boards, next_player):
    # Mistake: returns +1 / -1 / 0 instead of class indices.
    return boards.long() * next_player.long()[:, None]


def rel_colours(boards, next_player):
    # Mistake: ignores who moves next and encodes colours (1 black, 2 white).
    b = boards.long()
    return torch.where(b == 0, 0, torch.where(b == 1, 1, 2))


def rel_int8(boards, next_player):
    # Mistake: keeps the board's dtype; cross-entropy targets must be int64.
    rel = boards * next_player[:, None]
    return torch.where(rel == 0, 0, torch.where(rel == 1, 1, 2)).to(torch.int8)


@pytest.mark.parametrize("wrong, message", [
    (rel_last_mover, r"swapped, as if relative to the player who just moved"),
    (rel_signed, r"boards \* next_player"),
    (rel_colours, r"ignored `next_player`"),
    (rel_int8, r"int64"),
])
def test_relative_states_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_relative_states(wrong)


# --- majority_baseline ------------------------------------------------------------------------

def baseline_global(train_states, test_states):
    # Mistake: one majority class for the whole board instead of one per square.
    majority = torch.bincount(train_states.flatten(), minlength=3).argmax()
    return (test_states == majority).float().mean().item()


def baseline_fitted_on_test(train_states, test_states):
    # Mistake: takes each square's majority from the test positions.
    majority = F.one_hot(test_states, 3).sum(0).argmax(-1)
    return (test_states == majority).float().mean().item()


@pytest.mark.parametrize("wrong, message", [
    (baseline_global, r"predicting one class"),
    (baseline_fitted_on_test, r"taken from `test_states`"),
])
def test_majority_baseline_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_majority_baseline(wrong)


# --- train_board_probe ------------------------------------------------------------------------

def _adam(params, loss_fn, steps, lr):
    with torch.enable_grad():
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            loss_fn().backward()
            opt.step()


def _init(d, seed):
    g = torch.Generator().manual_seed(seed)
    W = (0.01 * torch.randn(d, 36, 3, generator=g)).requires_grad_()
    return W, torch.zeros(36, 3, requires_grad=True)


def _fold(W, b, mu, sigma):
    W, b = W.detach(), b.detach()
    return W / sigma[:, None, None], b - einops.einsum(mu / sigma, W, "d, d s k -> s k")


def probe_softmax_over_squares(acts, states, steps=60, lr=0.1, seed=0):
    # Mistake: logits [m, 36, 3] with one-hot targets: F.cross_entropy takes axis 1 (the squares)
    # as the classes, so the softmax runs over the 36 squares.
    mu, sigma = acts.mean(0), acts.std(0) + 1e-6
    z = (acts - mu) / sigma
    W, b = _init(acts.shape[1], seed)
    target = F.one_hot(states, 3).float()
    _adam([W, b], lambda: F.cross_entropy(einops.einsum(z, W, "m d, d s k -> m s k") + b, target), steps, lr)
    return _fold(W, b, mu, sigma)


def probe_reshape_not_permute(acts, states, steps=60, lr=0.1, seed=0):
    # Mistake: gets the classes onto axis 1 with reshape instead of a permute, so the trained
    # numbers do not mean W[d, square, class].
    mu, sigma = acts.mean(0), acts.std(0) + 1e-6
    z = (acts - mu) / sigma
    W, b = _init(acts.shape[1], seed)
    m = len(acts)
    _adam([W, b], lambda: F.cross_entropy((einops.einsum(z, W, "m d, d s k -> m s k") + b).reshape(m, 3, 36),
                                          states), steps, lr)
    return _fold(W, b, mu, sigma)


def probe_not_folded(acts, states, steps=60, lr=0.1, seed=0):
    # Mistake: returns the probe of the standardised activations.
    mu, sigma = acts.mean(0), acts.std(0) + 1e-6
    z = (acts - mu) / sigma
    W, b = _init(acts.shape[1], seed)
    _adam([W, b], lambda: F.cross_entropy(einops.einsum(z, W, "m d, d s k -> m k s") + b.T, states), steps, lr)
    return W.detach(), b.detach()


def probe_no_enable_grad(acts, states, steps=60, lr=0.1, seed=0):
    # Mistake: forgets that the page switched gradients off.
    mu, sigma = acts.mean(0), acts.std(0) + 1e-6
    z = (acts - mu) / sigma
    W, b = _init(acts.shape[1], seed)
    opt = torch.optim.Adam([W, b], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(einops.einsum(z, W, "m d, d s k -> m k s") + b.T, states).backward()
        opt.step()
    return _fold(W, b, mu, sigma)


def probe_global_rng(acts, states, steps=60, lr=0.1, seed=0):
    # Mistake: draws the initial W from the global RNG, ignoring `seed`.
    mu, sigma = acts.mean(0), acts.std(0) + 1e-6
    z = (acts - mu) / sigma
    W = (0.01 * torch.randn(acts.shape[1], 36, 3)).requires_grad_()
    b = torch.zeros(36, 3, requires_grad=True)
    _adam([W, b], lambda: F.cross_entropy(einops.einsum(z, W, "m d, d s k -> m k s") + b.T, states), steps, lr)
    return _fold(W, b, mu, sigma)


@pytest.mark.parametrize("wrong, message", [
    (probe_softmax_over_squares, r"softmax ran over the 36 squares"),
    (probe_reshape_not_permute, r"never with reshape"),
    (probe_not_folded, r"probe of the standardised activations"),
    (probe_no_enable_grad, r"torch.enable_grad"),
    (probe_global_rng, r"depends on `seed` alone"),
])
def test_train_board_probe_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_train_board_probe(wrong)


# --- accuracy_by_square -----------------------------------------------------------------------

def by_square_wrong_axis(W, b, acts, states):
    # Mistake: averages over the squares, giving one accuracy per position.
    pred = (einops.einsum(acts, W, "m d, d s k -> m s k") + b).argmax(-1)
    return (pred == states).float().mean(1)


def by_square_no_bias(W, b, acts, states):
    # Mistake: leaves the bias out of the logits.
    pred = einops.einsum(acts, W, "m d, d s k -> m s k").argmax(-1)
    return (pred == states).float().mean(0)


@pytest.mark.parametrize("wrong, message", [
    (by_square_wrong_axis, r"one accuracy per \*position\*"),
    (by_square_no_bias, r"leave b out"),
])
def test_accuracy_by_square_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_accuracy_by_square(wrong)


# --- occupied_accuracy ------------------------------------------------------------------------

def occupied_counts_empties(W, b, acts, states):
    # Mistake: the accuracy over every square, empties included.
    pred = (einops.einsum(acts, W, "m d, d s k -> m s k") + b).argmax(-1)
    return (pred == states).float().mean().item()


def occupied_by_prediction(W, b, acts, states):
    # Mistake: masks with the squares the probe calls occupied instead of the true ones.
    pred = (einops.einsum(acts, W, "m d, d s k -> m s k") + b).argmax(-1)
    return (pred == states)[pred != 0].float().mean().item()


@pytest.mark.parametrize("wrong, message", [
    (occupied_counts_empties, r"empties included"),
    (occupied_by_prediction, r"the \*probe\* calls occupied"),
])
def test_occupied_accuracy_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_occupied_accuracy(wrong)
