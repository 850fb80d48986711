"""The checks of "Reading the model with the probe" (book/chapters/othello/03-reading.md) fail on
the stubs, pass on the exported solutions, and reject the mistakes a learner would plausibly make,
each written as a named function with a comment naming the slip."""

from __future__ import annotations

import pytest
import torch
from einops import reduce

from interpbook.checks import CheckFailed
from interpbook.checks.othello import reading as checks
from interpbook.datasets import othello as game
from interpbook.solutions.othello import reading as sol


@pytest.fixture(autouse=True)
def _no_grad():
    # The page runs with gradients switched off; so do the tests.
    with torch.no_grad():
        yield


def stub(*args, **kwargs):
    raise NotImplementedError


def test_solutions_pass():
    checks.check_probe_directions(sol.probe_directions)
    checks.check_cosine_table(sol.cosine_table)
    checks.check_neuron_move_effect(sol.neuron_move_effect)
    checks.check_flipped_squares(sol.flipped_squares)
    checks.check_attention_to_own_moves(sol.attention_to_own_moves)


@pytest.mark.parametrize("name", checks.__all__)
def test_stubs_fail(name):
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        getattr(checks, name)(stub)


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True)


# --- probe_directions -------------------------------------------------------------------------

def directions_not_normalised(W):
    # Mistake: forgets to divide by the norm.
    return (W[:, :, 0] - (W[:, :, 1] + W[:, :, 2]) / 2).T, (W[:, :, 1] - W[:, :, 2]).T


def directions_blank_not_centred(W):
    # Mistake: takes the "empty" class vector alone, with the part all three classes share.
    return _unit(W[:, :, 0].T), _unit((W[:, :, 1] - W[:, :, 2]).T)


def directions_blank_minus_one_class(W):
    # Mistake: empty minus mine only, instead of minus the mean of mine and theirs.
    return _unit((W[:, :, 0] - W[:, :, 1]).T), _unit((W[:, :, 1] - W[:, :, 2]).T)


def directions_mine_swapped(W):
    # Mistake: theirs minus mine.
    return _unit((W[:, :, 0] - (W[:, :, 1] + W[:, :, 2]) / 2).T), _unit((W[:, :, 2] - W[:, :, 1]).T)


def directions_not_transposed(W):
    # Mistake: returns [d_model, 36] instead of one row per square.
    blank, mine = sol.probe_directions(W)
    return blank.T, mine.T


@pytest.mark.parametrize("wrong, message", [
    (directions_not_normalised, r"norms .* unit vector"),
    (directions_blank_not_centred, r"without centring"),
    (directions_blank_minus_one_class, r"minus one of the other classes"),
    (directions_mine_swapped, r"wrong way"),
    (directions_not_transposed, r"shape \[48, 36\]; expected \[36, 48\]"),
])
def test_probe_directions_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_probe_directions(wrong)


# --- cosine_table -----------------------------------------------------------------------------

def cosine_dot_product(vectors, directions):
    # Mistake: a plain dot product, which grows with the lengths.
    return vectors @ directions.T


def cosine_only_directions(vectors, directions):
    # Mistake: normalises the directions (the probe's) but not the neurons' weights.
    return vectors @ _unit(directions).T


def cosine_transposed(vectors, directions):
    # Mistake: directions x vectors.
    return _unit(directions) @ _unit(vectors).T


@pytest.mark.parametrize("wrong, message", [
    (cosine_dot_product, r"plain dot products"),
    (cosine_only_directions, r"normalised the directions but not the vectors"),
    (cosine_transposed, r"shape \[3, 5\]"),
])
def test_cosine_table_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_cosine_table(wrong)


# --- neuron_move_effect -----------------------------------------------------------------------

def effect_not_centred(W_out, W_U):
    # Mistake: forgets that a shift of all 32 logits changes no probability.
    out = torch.full((W_out.shape[0], 36), float("nan"))
    out[:, torch.from_numpy(game.SQUARE_OF_TOKEN)] = W_out @ W_U
    return out


def effect_token_is_square(W_out, W_U):
    # Mistake: puts token i on square i (and fills the rest with NaN).
    effect = W_out @ W_U
    out = torch.full((W_out.shape[0], 36), float("nan"))
    out[:, :32] = effect - effect.mean(-1, keepdim=True)
    return out


def effect_token_is_square_centre_nan(W_out, W_U):
    # Mistake: token i on square i, then the centre squares set to NaN.
    effect = W_out @ W_U
    out = torch.zeros(W_out.shape[0], 36)
    out[:, :32] = effect - effect.mean(-1, keepdim=True)
    out[:, [14, 15, 20, 21]] = float("nan")
    return out


def effect_centre_zero(W_out, W_U):
    # Mistake: leaves the centre squares at 0, which reads as "no effect" on the plots.
    out = sol.neuron_move_effect(W_out, W_U)
    return out.nan_to_num(0.0)


def effect_centred_over_board(W_out, W_U):
    # Mistake: centres after placing on the board, over 36 squares with zeros at the centre.
    out = torch.zeros(W_out.shape[0], 36)
    out[:, torch.from_numpy(game.SQUARE_OF_TOKEN)] = W_out @ W_U
    out = out - out.mean(-1, keepdim=True)
    out[:, [14, 15, 20, 21]] = float("nan")
    return out


@pytest.mark.parametrize("wrong, message", [
    (effect_not_centred, r"not centred over the moves"),
    (effect_token_is_square, r"token i was put on square i"),
    (effect_token_is_square_centre_nan, r"token i was put on square i"),
    (effect_centre_zero, r"centre squares .* should be NaN"),
    (effect_centred_over_board, r"off by a constant per neuron"),
])
def test_neuron_move_effect_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_neuron_move_effect(wrong)


# --- flipped_squares --------------------------------------------------------------------------

def flipped_with_placed(board_before, board_after):
    # Mistake: every square that changed, the newly placed disc included.
    return board_before != board_after


def flipped_sign_only(board_before, board_after):
    # Mistake: "the colour is the opposite", which is also true where both are empty (0 == -0).
    return board_before == -board_after


def flipped_to_black(board_before, board_after):
    # Mistake: only discs that turned black (thinking of the first move).
    return (board_before == game.WHITE) & (board_after == game.BLACK)


def flipped_as_int(board_before, board_after):
    # Mistake: returns 0/1 integers, not a boolean mask.
    return ((board_before != 0) & (board_after == -board_before)).long()


@pytest.mark.parametrize("wrong, message", [
    (flipped_with_placed, r"c2 is the new disc"),
    (flipped_sign_only, r"empty ones.*before == -after"),
    (flipped_to_black, r"only squares that turned black"),
    (flipped_as_int, r"dtype torch.int64.*boolean"),
])
def test_flipped_squares_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_flipped_squares(wrong)


# --- attention_to_own_moves -------------------------------------------------------------------

def _mask(n, device, odd=True, include_self=False):
    q = torch.arange(n, device=device)[:, None]
    k = torch.arange(n, device=device)[None, :]
    parity = (q - k) % 2 == (1 if odd else 0)
    return ((k <= q) if include_self else (k < q)) & parity


def own_parity_swapped(pattern):
    # Mistake: same parity as the query, i.e. the moves of the player who just moved.
    own = _mask(pattern.shape[-1], pattern.device, odd=False, include_self=True)
    return reduce((pattern * own).sum(-1)[..., 1:], "b h q -> h", "mean")


def own_parity_swapped_no_self(pattern):
    # Mistake: same parity as the query, leaving out the query's own position.
    own = _mask(pattern.shape[-1], pattern.device, odd=False)
    return reduce((pattern * own).sum(-1)[..., 1:], "b h q -> h", "mean")


def own_with_query_zero(pattern):
    # Mistake: averages over every query, position 0 (which has no earlier move) included.
    own = _mask(pattern.shape[-1], pattern.device)
    return reduce((pattern * own).sum(-1), "b h q -> h", "mean")


def own_mean_over_keys(pattern):
    # Mistake: a mean over the keys instead of the sum of the attention on them.
    own = _mask(pattern.shape[-1], pattern.device)
    return reduce((pattern * own).mean(-1)[..., 1:], "b h q -> h", "mean")


def own_with_self(pattern):
    # Mistake: counts the query's own position (the move just made) as the next mover's.
    own = _mask(pattern.shape[-1], pattern.device) | torch.eye(pattern.shape[-1], dtype=torch.bool)
    return reduce((pattern * own).sum(-1)[..., 1:], "b h q -> h", "mean")


@pytest.mark.parametrize("wrong, message", [
    (own_parity_swapped, r"parity is swapped"),
    (own_parity_swapped_no_self, r"parity is swapped"),
    (own_with_query_zero, r"query position 0 was included"),
    (own_mean_over_keys, r"mean over the keys"),
    (own_with_self, r"head 1 looks only at the query's own position"),
])
def test_attention_to_own_moves_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_attention_to_own_moves(wrong)
