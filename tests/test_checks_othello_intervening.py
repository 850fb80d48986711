"""The checks of "Intervening" (book/chapters/othello/04-intervening.md) fail on the stubs, pass
on the exported solutions, and reject the mistakes a learner would plausibly make, each written
as a named function with a comment naming the slip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpbook.checks import CheckFailed, leftover_hooks
from interpbook.checks.othello import intervening as checks
from interpbook.datasets import othello as game
from interpbook.solutions.othello import intervening as sol
from interpbook.zoo import load_model


@pytest.fixture(autouse=True)
def _no_grad():
    # The page runs with gradients switched off; so do the tests.
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def model():
    m = load_model("othello-mini", device="cpu")
    yield m
    m.reset_hooks()


def stub(*args, **kwargs):
    raise NotImplementedError


def test_solutions_pass(model):
    checks.check_flip_square(sol.flip_square)
    checks.check_legal_after(sol.legal_after)
    checks.check_flip_delta(sol.flip_delta)
    checks.check_edited_log_probs(sol.edited_log_probs, model)
    checks.check_follows_edit(sol.follows_edit)
    checks.check_random_like(sol.random_like)


@pytest.mark.parametrize("name", checks.__all__)
def test_stubs_fail(name, model):
    args = (model,) if name == "check_edited_log_probs" else ()
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        getattr(checks, name)(stub, *args)


# --- flip_square ------------------------------------------------------------------------------

def flip_in_place(states, square):
    # Mistake: flips the caller's tensor (a view of the data set) instead of a copy.
    if states[square] == 0:
        raise ValueError("empty")
    states[square] = 3 - states[square]
    return states


def flip_without_check(states, square):
    # Mistake: no test for an empty square, so 0 silently becomes 3.
    out = states.clone()
    out[square] = 3 - states[square]
    return out


def flip_by_negation(states, square):
    # Mistake: thinks in the engine's +1/-1 colours and negates, giving -1 and -2.
    if states[square] == 0:
        raise ValueError("empty")
    out = states.clone()
    out[square] = -states[square]
    return out


@pytest.mark.parametrize("wrong, message", [
    (flip_in_place, r"in place"),
    (flip_without_check, r"square 0 is empty.*ValueError"),
    (flip_by_negation, r"3 - state"),
])
def test_flip_square_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_flip_square(wrong)


# --- legal_after ------------------------------------------------------------------------------

def _as_board(states):
    return torch.where(states == 1, 1, torch.where(states == 2, -1, 0)).numpy().astype(np.int8)


def legal_as_squares(states):
    # Mistake: returns the engine's 36 squares instead of the model's 32 tokens.
    return torch.from_numpy(game.legal_moves(_as_board(states), np.ones(len(states), dtype=np.int8)))


def legal_for_opponent(states):
    # Mistake: "mine" just moved, so asks for the other player's moves (the 2s).
    board = _as_board(states)
    moves = game.legal_moves(board, -np.ones(len(board), dtype=np.int8))
    return torch.from_numpy(moves[:, game.SQUARE_OF_TOKEN])


def legal_raw_states(states):
    # Mistake: hands the 0/1/2 encoding to the engine, which expects +1/-1/0.
    board = states.numpy().astype(np.int8)
    moves = game.legal_moves(board, np.ones(len(board), dtype=np.int8))
    return torch.from_numpy(moves[:, game.SQUARE_OF_TOKEN])


@pytest.mark.parametrize("wrong, message", [
    (legal_as_squares, r"one entry per \*square\*.*SQUARE_OF_TOKEN"),
    (legal_for_opponent, r"\*opponent\*"),
    (legal_raw_states, r"no move is legal anywhere"),
])
def test_legal_after_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_legal_after(wrong)


# --- flip_delta -------------------------------------------------------------------------------

def _parts(x, W_sq, b_sq, cur, new, with_bias=True):
    rows = torch.arange(len(x))
    logits = torch.einsum("nd,ndk->nk", x, W_sq) + (b_sq if with_bias else 0)
    gap = logits[rows, cur] - logits[rows, new]
    direction = W_sq[rows, :, new] - W_sq[rows, :, cur]
    return gap, direction


def delta_unit_direction(x, W_sq, b_sq, cur, new, scale):
    # Mistake: normalises the direction to unit length and forgets |dir|^2 in the step size.
    gap, direction = _parts(x, W_sq, b_sq, cur, new)
    return direction / direction.norm(dim=-1, keepdim=True) * (scale * (gap.abs() + 2))[:, None]


def delta_reversed(x, W_sq, b_sq, cur, new, scale):
    # Mistake: the direction W[cur] - W[new], which pushes the probe further towards `cur`.
    gap, direction = _parts(x, W_sq, b_sq, cur, new)
    return -direction * (scale * (gap.abs() + 2) / (direction**2).sum(-1))[:, None]


def delta_no_abs(x, W_sq, b_sq, cur, new, scale):
    # Mistake: uses the signed gap, so a row where the probe already prefers `new` gets a small push.
    gap, direction = _parts(x, W_sq, b_sq, cur, new)
    return direction * (scale * (gap + 2) / (direction**2).sum(-1))[:, None]


def delta_no_bias(x, W_sq, b_sq, cur, new, scale):
    # Mistake: measures the probe's gap from x @ W alone, leaving out the bias.
    gap, direction = _parts(x, W_sq, b_sq, cur, new, with_bias=False)
    return direction * (scale * (gap.abs() + 2) / (direction**2).sum(-1))[:, None]


@pytest.mark.parametrize("wrong, message", [
    (delta_unit_direction, r"unit\s+direction"),
    (delta_reversed, r"sign is reversed"),
    (delta_no_abs, r"absolute value of the gap"),
    (delta_no_bias, r"bias"),
])
def test_flip_delta_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_flip_delta(wrong)


# --- edited_log_probs -------------------------------------------------------------------------

def _run(model, tokens, name, hook, positions):
    logits = model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])
    return logits[torch.arange(len(tokens)), positions]


def edit_every_position(model, tokens, layer, positions, deltas):
    # Mistake: adds each row's delta at all of its positions, editing the history it attends to.
    def hook(resid, hook):
        return resid + deltas[:, None]
    return _run(model, tokens, f"blocks.{layer}.hook_resid_pre", hook, positions).log_softmax(-1)


def edit_returns_logits(model, tokens, layer, positions, deltas):
    # Mistake: returns the raw logits.
    def hook(resid, hook):
        resid = resid.clone()
        resid[torch.arange(len(tokens)), positions] += deltas
        return resid
    return _run(model, tokens, f"blocks.{layer}.hook_resid_pre", hook, positions)


def edit_fixed_layer(model, tokens, layer, positions, deltas):
    # Mistake: the hook name hard-codes the layer the learner tried first.
    def hook(resid, hook):
        resid = resid.clone()
        resid[torch.arange(len(tokens)), positions] += deltas
        return resid
    return _run(model, tokens, "blocks.2.hook_resid_pre", hook, positions).log_softmax(-1)


def edit_leaves_hook(model, tokens, layer, positions, deltas):
    # Mistake: adds a hook with model.add_hook and never removes it.
    def hook(resid, hook):
        resid = resid.clone()
        resid[torch.arange(len(tokens)), positions] += deltas
        return resid
    model.add_hook(f"blocks.{layer}.hook_resid_pre", hook)
    return model(tokens)[torch.arange(len(tokens)), positions].log_softmax(-1)


def edit_reads_next_position(model, tokens, layer, positions, deltas):
    # Mistake: reads the prediction one position later, as if position t predicted move t.
    def hook(resid, hook):
        resid = resid.clone()
        resid[torch.arange(len(tokens)), positions] += deltas
        return resid
    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", hook)])
    return logits[torch.arange(len(tokens)), (positions + 1).clamp(max=tokens.shape[1] - 1)].log_softmax(-1)


@pytest.mark.parametrize("wrong, message", [
    (edit_every_position, r"\*every\* position"),
    (edit_returns_logits, r"log-probabilities"),
    (edit_fixed_layer, r"`layer` argument"),
    (edit_leaves_hook, r"hooks were still attached"),
    (edit_reads_next_position, r"position \+ 1"),
])
def test_edited_log_probs_rejects(wrong, message, model):
    with pytest.raises(CheckFailed, match=message):
        checks.check_edited_log_probs(wrong, model)
    assert not leftover_hooks(model)


# --- follows_edit -----------------------------------------------------------------------------

def follows_only_gains(clean_lp, edited_lp, legal_before, legal_after):
    # Mistake: checks the moves the edit makes legal, forgets the ones it makes illegal.
    gain = legal_after & ~legal_before
    return ((edited_lp > clean_lp) | ~gain).all(-1)


def follows_whole_boards(clean_lp, edited_lp, legal_before, legal_after):
    # Mistake: asks every legal move of the edited board to rise and every other move to fall,
    # not only the moves whose legality changed.
    up = edited_lp > clean_lp
    return (up | ~legal_after).all(-1) & (~up | legal_after).all(-1)


def follows_swapped(clean_lp, edited_lp, legal_before, legal_after):
    # Mistake: the boards swapped, so the newly *illegal* moves are asked to rise.
    gain = legal_before & ~legal_after
    lose = legal_after & ~legal_before
    return ((edited_lp > clean_lp) | ~gain).all(-1) & ((edited_lp < clean_lp) | ~lose).all(-1)


@pytest.mark.parametrize("wrong, message", [
    (follows_only_gains, r"only checked the moves the edit makes legal"),
    (follows_whole_boards, r"Only the moves whose legality the edit changes"),
    (follows_swapped, r"row 0 should be True"),
])
def test_follows_edit_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_follows_edit(wrong)


# --- random_like ------------------------------------------------------------------------------

def random_overall_norm(deltas, seed):
    # Mistake: matches the norm of the whole batch, not of each row.
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(deltas.shape, generator=g)
    return r / r.norm() * deltas.norm()


def random_uniform(deltas, seed):
    # Mistake: torch.rand (uniform on [0, 1)), so every direction leans into the positive corner.
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(deltas.shape, generator=g)
    return r / r.norm(dim=-1, keepdim=True) * deltas.norm(dim=-1, keepdim=True)


def random_global_rng(deltas, seed):
    # Mistake: ignores `seed` and draws from the global generator.
    r = torch.randn(deltas.shape)
    return r / r.norm(dim=-1, keepdim=True) * deltas.norm(dim=-1, keepdim=True)


def random_is_the_edit(deltas, seed):
    # Mistake: a "control" that is the edit itself with a random sign.
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, (len(deltas), 1), generator=g) * 2 - 1
    return deltas * sign


@pytest.mark.parametrize("wrong, message", [
    (random_overall_norm, r"\*overall\* norm"),
    (random_uniform, r"torch\.rand"),
    (random_global_rng, r"two calls with seed 0"),
    (random_is_the_edit, r"point along `deltas`"),
])
def test_random_like_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_random_like(wrong)
