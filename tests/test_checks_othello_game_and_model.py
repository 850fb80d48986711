"""The checks of section 1 of the Othello chapter, "The game and the model": each fails on the
stub, passes on the exported solution, and rejects the wrong answers a learner is likely to
write, with a message that names the mistake."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpbook.checks import CheckFailed
from interpbook.checks.othello import game_and_model as checks
from interpbook.datasets import othello as game
from interpbook.solutions.othello.game_and_model import (
    kl_from_uniform_legal,
    legal_probability,
    legal_top1_rate,
    replay,
    token_to_square,
)


def stub(*args, **kwargs):
    raise NotImplementedError


CHECKS = [
    (checks.check_token_to_square, token_to_square),
    (checks.check_replay, replay),
    (checks.check_legal_top1_rate, legal_top1_rate),
    (checks.check_legal_probability, legal_probability),
    (checks.check_kl_from_uniform_legal, kl_from_uniform_legal),
]


@pytest.mark.parametrize("check, solution", CHECKS, ids=[c.__name__ for c, _ in CHECKS])
def test_check_fails_on_stub(check, solution):
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        check(stub)


@pytest.mark.parametrize("check, solution", CHECKS, ids=[c.__name__ for c, _ in CHECKS])
def test_check_passes_on_solution(check, solution, capsys):
    check(solution)
    assert "✔" in capsys.readouterr().out


def test_all_checks_are_exported():
    assert sorted(checks.__all__) == sorted(c.__name__ for c, _ in CHECKS)


# --- token_to_square --------------------------------------------------------------------------

def token_is_square(tokens):
    # Mistake: forgets that the centre squares have no token.
    return tokens.clone()


def centre_as_one_block(tokens):
    # Mistake: skips four squares at once from token 14 on, as if the centre were 14..17.
    return tokens + 4 * (tokens >= 14)


def arange_only(tokens):
    # Mistake: hard-codes a 1-D answer instead of indexing with the tokens.
    return torch.tensor([s for s in range(36) if s not in (14, 15, 20, 21)])


@pytest.mark.parametrize("wrong, message", [
    (token_is_square, r"token i as square i.*Token 14 is square 16"),
    (centre_as_one_block, r"not four squares in a row"),
    (arange_only, r"shape"),
])
def test_token_to_square_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_token_to_square(wrong)


# --- replay -----------------------------------------------------------------------------------

def replay_alternating(squares):
    # Mistake: strict alternation of colours; passes are ignored.
    board, player = game.initial_boards(1), np.array([game.BLACK], dtype=np.int8)
    boards, players = [], []
    for s in squares:
        board = game.play(board, player, np.array([s]))
        boards.append(board[0])
        players.append(player[0])
        player = -player
    return np.stack(boards), np.array(players, dtype=np.int8)


def replay_boards_before(squares):
    # Mistake: records the board before each move instead of after it.
    board, player = game.initial_boards(1), np.array([game.BLACK], dtype=np.int8)
    boards, players = [], []
    for s in squares:
        if not game.legal_moves(board, player).any():
            player = -player
        boards.append(board[0])
        board = game.play(board, player, np.array([s]))
        players.append(player[0])
        player = -player
    return np.stack(boards), np.array(players, dtype=np.int8)


def replay_next_player(squares):
    # Mistake: records the player to move AFTER each move, not the one who made it.
    board, player = game.initial_boards(1), np.array([game.BLACK], dtype=np.int8)
    boards, players = [], []
    for s in squares:
        if not game.legal_moves(board, player).any():
            player = -player
        board = game.play(board, player, np.array([s]))
        boards.append(board[0])
        player = -player
        players.append(player[0])
    return np.stack(boards), np.array(players, dtype=np.int8)


def replay_pass_not_recorded(squares):
    # Mistake: plays the move after a pass with the right colour but records the colour whose
    # turn it would have been.
    board, player = game.initial_boards(1), np.array([game.BLACK], dtype=np.int8)
    boards, players = [], []
    for s in squares:
        mover = player if game.legal_moves(board, player).any() else -player
        board = game.play(board, mover, np.array([s]))
        boards.append(board[0])
        players.append(player[0])
        player = -mover
    return np.stack(boards), np.array(players, dtype=np.int8)


@pytest.mark.parametrize("wrong, message", [
    (replay_alternating, r"pass.*alternate colours strictly"),
    (replay_boards_before, r"BEFORE each move"),
    (replay_next_player, r"players are those of the next move"),
    (replay_pass_not_recorded, r"follows a pass"),
])
def test_replay_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_replay(wrong)


# --- legal_top1_rate --------------------------------------------------------------------------

def top1_masked_first(logits, legal):
    # Mistake: masks the illegal moves before the argmax, so the top move is always legal.
    top = logits.masked_fill(~legal, float("-inf")).argmax(-1)
    return legal.gather(-1, top[..., None]).float().mean().item()


def top1_wrong_axis(logits, legal):
    # Mistake: argmax over the positions (dim 1) instead of the moves.
    top = logits.argmax(1)  # [n, vocab]
    return legal.gather(1, top[:, None, :]).float().mean().item()


def top1_all_legal(logits, legal):
    # Mistake: averages the legal mask itself, not at the top move.
    return legal.float().mean().item()


def top1_per_position(logits, legal):
    # Mistake: returns the hits per position instead of their mean.
    return legal.gather(-1, logits.argmax(-1)[..., None])[..., 0].float()


@pytest.mark.parametrize("wrong, message", [
    (top1_masked_first, r"argmax among the legal moves only"),
    (top1_wrong_axis, r"argmax over the wrong axis"),
    (top1_all_legal, r"fraction of ALL moves"),
    (top1_per_position, r"return one number"),
])
def test_legal_top1_rate_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_legal_top1_rate(wrong)


# --- legal_probability ------------------------------------------------------------------------

def mass_masked_first(logits, legal):
    # Mistake: masks the illegal logits before the softmax (renormalises over the legal moves).
    return logits.masked_fill(~legal, float("-inf")).softmax(-1).sum(-1)


def mass_no_softmax(logits, legal):
    # Mistake: adds up the legal logits themselves.
    return (logits * legal).sum(-1)


def mass_softmax_over_positions(logits, legal):
    # Mistake: softmax over dim 1 (the positions) instead of the moves.
    return (logits.softmax(1) * legal).sum(-1)


@pytest.mark.parametrize("wrong, message", [
    (mass_masked_first, r"masked the illegal logits.*BEFORE the softmax"),
    (mass_no_softmax, r"outside \[0, 1\].*softmax"),
    (mass_softmax_over_positions, r"softmax over the positions"),
])
def test_legal_probability_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_legal_probability(wrong)


# --- kl_from_uniform_legal --------------------------------------------------------------------

def kl_reversed(logits, legal):
    # Mistake: KL(model || ideal), the other direction (the ideal is 0 on illegal moves).
    q = logits.softmax(-1)
    u = legal.float() / legal.sum(-1, keepdim=True)
    return (q * (q.log() - u.log())).sum(-1)


def kl_reversed_on_legal(logits, legal):
    # Mistake: the other direction, "fixed" by summing over the legal moves only.
    q = logits.softmax(-1)
    k = legal.sum(-1, keepdim=True)
    return (q * (q.log() + k.log()) * legal).sum(-1)


def kl_uniform_over_all(logits, legal):
    # Mistake: the ideal taken as uniform over all 32 moves.
    logq = logits.log_softmax(-1)
    n = logits.shape[-1]
    return (-torch.log(torch.tensor(float(n))) - logq).mean(-1)


def kl_in_bits(logits, legal):
    # Mistake: log base 2.
    logq = logits.log_softmax(-1) / torch.log(torch.tensor(2.0))
    k = legal.sum(-1)
    return -torch.log2(k.float()) - (logq * legal).sum(-1) / k


def kl_cross_entropy(logits, legal):
    # Mistake: forgets the ideal's entropy (returns the cross-entropy).
    logq = logits.log_softmax(-1)
    return -(logq * legal).sum(-1) / legal.sum(-1)


@pytest.mark.parametrize("wrong, message", [
    (kl_reversed, r"inf or NaN.*KL\(model \|\| ideal\)"),
    (kl_reversed_on_legal, r"other direction"),
    (kl_uniform_over_all, r"uniform distribution over all 32"),
    (kl_in_bits, r"bits instead of nats"),
    (kl_cross_entropy, r"cross-entropy"),
])
def test_kl_from_uniform_legal_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_kl_from_uniform_legal(wrong)
