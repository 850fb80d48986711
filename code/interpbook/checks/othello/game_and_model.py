"""Checks for section 1, "The game and the model" (book/chapters/othello/01-game-and-model.md).

No check runs the model. ``token_to_square`` gets every token, then a batch of tokens in a 2-D
tensor; the expected squares are the playable squares of the 6 x 6 board (all but the four
centre squares) in row order. ``replay`` gets move lists of games drawn by the engine
(``game.random_games``): one without a pass, one where a player passes in the middle of the game,
and one that ends before the board is full; its boards and players are compared with the ones the
engine recorded while it played. The three scoring functions get hand-made logits whose
softmax is known by construction (``log p`` plus a constant per position) and hand-made legal
masks, so the top-1 rate, the legal mass and the KL divergence are known without a second copy
of the solution.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from interpbook.checks import CheckFailed, call, expect_tensor, passed
from interpbook.datasets import othello as game

__all__ = [
    "check_token_to_square",
    "check_replay",
    "check_legal_top1_rate",
    "check_legal_probability",
    "check_kl_from_uniform_legal",
]

_CENTRE = (14, 15, 20, 21)
_PLAYABLE = [s for s in range(game.N_SQUARES) if s not in _CENTRE]  # 32 squares, row order


# --- token_to_square --------------------------------------------------------------------------

def check_token_to_square(fn: Callable) -> None:
    """``fn(tokens)`` maps tokens 0..31 to squares 0..35, skipping the centre squares, any shape."""
    assert list(game.SQUARE_OF_TOKEN) == _PLAYABLE  # the engine's own table agrees
    tokens = torch.arange(game.N_MOVES)
    out = call(fn, tokens.clone(), what="(tokens = torch.arange(32))")
    out = expect_tensor(out, "the squares of tokens 0..31", shape=(game.N_MOVES,), dims="token")
    if out.is_floating_point() or out.dtype == torch.bool:
        raise CheckFailed(f"the squares have dtype {out.dtype}; return integer squares (torch.long), "
                          "so they can index a board.")
    got = out.cpu().long().tolist()
    if got != _PLAYABLE:
        wrong = [(t, g, e) for t, (g, e) in enumerate(zip(got, _PLAYABLE)) if g != e]
        shown = ", ".join(f"token {t} -> {g} (expected {e})" for t, g, e in wrong[:4])
        if got == list(range(game.N_MOVES)):
            raise CheckFailed(
                f"you returned token i as square i ({shown}, ...). The four centre squares 14, 15, 20, 21 "
                "start occupied, so no move is ever played there and they have no token: from token 14 on, "
                "the tokens skip them. Token 14 is square 16.")
        if got[14:18] == [18, 19, 20, 21] or got[14] == 18:
            raise CheckFailed(
                f"{shown}. The centre squares are not four squares in a row: they are 14, 15 (row 3, "
                "columns c and d) and 20, 21 (row 4). Tokens 14..17 are squares 16..19 (the rest of row 3 and "
                "the start of row 4), and tokens 18..31 are squares 22..35.")
        if any(s in _CENTRE for s in got):
            bad = sorted({s for s in got if s in _CENTRE})
            raise CheckFailed(f"your squares include centre square(s) {bad} ({shown}); the centre squares "
                              "14, 15, 20, 21 have no token. Skip all four.")
        raise CheckFailed(f"wrong squares: {shown}. The tokens are the 32 playable squares (0..35 without "
                          "14, 15, 20, 21) in increasing order.")
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(game.N_MOVES, (3, 7), generator=g)
    out = call(fn, batch.clone(), what="(a [3, 7] tensor of tokens)")
    out = expect_tensor(out, "the squares of a [3, 7] batch of tokens", shape=(3, 7), dims="3 7")
    if out.cpu().long().tolist() != torch.tensor(_PLAYABLE)[batch].tolist():
        raise CheckFailed("right on torch.arange(32) but wrong on a [3, 7] batch of tokens: the output should have "
                          "the input's shape, each entry mapped on its own (index a lookup table with the "
                          "tokens).")
    passed("token_to_square maps the 32 tokens to the playable squares, for any shape")


# --- replay -----------------------------------------------------------------------------------

def _pick_games() -> list[tuple[str, int, game.Games]]:
    """(description, index, games): a full game without a pass, a full game with a pass in the
    middle (not at the last move), and a game that ends before the board is full."""
    g = game.random_games(300, seed=3)
    full = g.length == game.N_MOVES
    same = (g.players[:, 1:] == g.players[:, :-1]) & (g.players[:, 1:] != 0)  # move t+1 by the mover of t
    no_pass = np.flatnonzero(full & ~same.any(1))
    mid_pass = np.flatnonzero(full & same[:, :25].any(1))
    short = np.flatnonzero(g.length < game.N_MOVES - 2)
    return [("a full game without a pass", int(no_pass[0]), g),
            ("a full game in which a player passes", int(mid_pass[0]), g),
            ("a game that ends before the board is full", int(short[0]), g)]


def _as_array(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise CheckFailed(f"{what} should be a numpy array (or a tensor), got {type(x).__name__}.")


def check_replay(fn: Callable) -> None:
    """``fn(squares)`` returns ``(boards [T, 36], players [T])``: the board after each move and
    who made it, as the engine recorded them, passes included."""
    for desc, i, g in _pick_games():
        T = int(g.length[i])
        squares = [int(s) for s in g.moves[i, :T]]
        want_boards, want_players = g.boards[i, :T], g.players[i, :T]
        passes = [t for t in range(1, T) if want_players[t] == want_players[t - 1]]
        try:
            out = call(fn, list(squares), what=f"({desc}: a list of {T} squares)")
        except CheckFailed as e:
            if isinstance(e.__cause__, ValueError) and "illegal move" in str(e.__cause__) and passes:
                raise CheckFailed(
                    f"{e}\nThis game has a pass: before move {passes[0]} (counting from 0), "
                    f"{'black' if want_players[passes[0]] == 1 else 'white'} moved and then moves again, because "
                    "the other player had no legal move. Looks like you alternate colours strictly. Before each "
                    "move, check whether the player to move has any legal move (game.legal_moves(...).any()); "
                    "if not, the other player makes this move.") from None
            raise
        if not isinstance(out, tuple) or len(out) != 2:
            raise CheckFailed(f"replay should return a tuple (boards, players); got {type(out).__name__}.")
        boards, players = _as_array(out[0], "boards"), _as_array(out[1], "players")
        if boards.shape != (T, game.N_SQUARES) or players.shape != (T,):
            raise CheckFailed(f"for {desc} ({T} moves) you returned boards of shape {list(boards.shape)} and players "
                              f"of shape {list(players.shape)}; expected [{T}, 36] and [{T}]: one board and one "
                              "player per move (no initial board).")
        if not np.isin(players, (game.BLACK, game.WHITE)).all():
            raise CheckFailed(f"players holds {sorted(set(players.tolist()))}; use the engine's colours, "
                              "1 (black) and -1 (white).")
        if np.array_equal(boards[1:], want_boards[:-1]) and np.array_equal(boards[0], game.initial_boards(1)[0]):
            raise CheckFailed(f"for {desc} your boards are the boards BEFORE each move (your first board is the "
                              "starting position). Return the board AFTER move t at index t, as "
                              "Games.boards does.")
        if np.array_equal(players[:-1], want_players[1:]) or np.array_equal(players, -want_players):
            raise CheckFailed(f"for {desc} your players are those of the next move, or the other colour: index t "
                              "should hold the player who MADE move t (black, 1, makes move 0).")
        bad = np.flatnonzero((boards != want_boards).any(1) | (players != want_players))
        if len(bad):
            t = int(bad[0])
            after_pass = t in passes
            msg = (f"for {desc}, move {t} (counting from 0, square {game.square_name(squares[t])}): you say "
                   f"{'black' if players[t] == 1 else 'white'} made it, the engine says "
                   f"{'black' if want_players[t] == 1 else 'white'}; "
                   f"{'the boards differ too' if (boards[t] != want_boards[t]).any() else 'the boards agree'}.")
            if after_pass:
                msg += (f" Move {t} follows a pass: {'black' if want_players[t] == 1 else 'white'} moves twice in a "
                        "row because the other player had no legal move. Looks like you alternate colours "
                        "strictly; test game.legal_moves for the player to move first.")
            elif any(p < t for p in passes):
                msg += (" The game had a pass before this move: after it the colours alternate again, starting "
                        "with the OTHER player from the one who moved twice. Keep track of whose turn it is after "
                        "every move, including the one after a pass.")
            raise CheckFailed(msg)
    passed("replay reproduces the engine's boards and players, passes and an early end included")


# --- the three scores: hand-made logits and legal masks ----------------------------------------

def _masks(n: int, pos: int, vocab: int, g: torch.Generator, k_max: int = 8) -> torch.Tensor:
    """Legal masks with 1..k_max legal moves per position (several with exactly 1)."""
    k = torch.randint(1, k_max + 1, (n, pos), generator=g)
    k[0, :4] = 1
    order = torch.rand(n, pos, vocab, generator=g).argsort(-1)
    return order < k[..., None]


def _planted_logits(legal: torch.Tensor, mass: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Logits whose softmax puts ``mass`` [n, pos] on the legal moves (spread unevenly among them)
    and the rest on the illegal ones; a random constant is added per position, which the
    softmax ignores."""
    w = torch.rand(legal.shape, generator=g, dtype=torch.float64) + 0.05
    legal_w = torch.where(legal, w, 0.0)
    illegal_w = torch.where(legal, 0.0, w)
    p = mass[..., None] * legal_w / legal_w.sum(-1, keepdim=True) + \
        (1 - mass[..., None]) * illegal_w / illegal_w.sum(-1, keepdim=True)
    shift = 5 * torch.randn(legal.shape[:-1], generator=g, dtype=torch.float64)[..., None]
    return (p.log() + shift).float()


def _score(fn: Callable, logits: torch.Tensor, legal: torch.Tensor, what: str):
    return call(fn, logits.clone(), legal.clone(), what=what)


def check_legal_top1_rate(fn: Callable) -> None:
    """``fn(logits [n, pos, vocab], legal [n, pos, vocab])``: the fraction of positions whose
    highest logit is a legal move, as a float."""
    g = torch.Generator().manual_seed(0)
    n, pos, vocab = 4, 31, 32
    logits = torch.randn(n, pos, vocab, generator=g)
    legal = _masks(n, pos, vocab, g)
    top = logits.argmax(-1)
    # Plant the answer: the top move is legal at exactly 93 of the 124 positions (0.75).
    hit = torch.zeros(n * pos, dtype=torch.bool)
    hit[torch.randperm(n * pos, generator=g)[:93]] = True
    hit = hit.reshape(n, pos)
    at_top = torch.nn.functional.one_hot(top, vocab).bool()
    legal = torch.where(at_top, hit[..., None], legal)
    legal = legal | (~legal.any(-1, keepdim=True) & ~at_top)  # every position keeps >= 1 legal move
    expected = 93 / (n * pos)
    out = _score(fn, logits, legal, "(hand-made logits and legal masks, [4, 31, 32]; the top move is legal at "
                                    "93 of the 124 positions)")
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise CheckFailed(f"legal_top1_rate returned a tensor of shape {list(out.shape)}; return one number, "
                              "the fraction over every game and position (.float().mean().item()).")
        out = out.item()
    try:
        out = float(out)
    except (TypeError, ValueError):
        raise CheckFailed(f"legal_top1_rate should return a float, got {type(out).__name__}.") from None
    if math.isclose(out, expected, abs_tol=1e-6):
        passed(f"legal_top1_rate = {out:.4f} on the planted logits (the top move is legal at 93 of 124 positions)")
        return
    if math.isclose(out, 1.0, abs_tol=1e-6):
        raise CheckFailed(
            f"you returned 1.0; the top move is legal at only 93 of the 124 positions ({expected:.4f}). Looks like "
            "you took the argmax among the legal moves only (logits masked with `legal`): that move is legal by "
            "construction. Take the argmax of the raw logits, then look up whether it is legal.")
    wrong_axis = legal.gather(1, logits.argmax(1)[:, None, :]).float().mean().item()
    if math.isclose(out, wrong_axis, abs_tol=1e-6):
        raise CheckFailed(
            f"you returned {out:.4f}, expected {expected:.4f}. Looks like you took the argmax over the wrong axis "
            "(the positions, dim 1, instead of the moves, the last dim). logits.argmax(-1) is the top move at each "
            "position, [n, pos].")
    if math.isclose(out, legal.float().mean().item(), abs_tol=1e-6):
        raise CheckFailed(f"you returned {out:.4f}, the fraction of ALL moves that are legal, not of the top moves; "
                          f"expected {expected:.4f}. Look up `legal` at the argmax of each position only.")
    if math.isclose(out, 1 - expected, abs_tol=1e-6):
        raise CheckFailed(f"you returned {out:.4f} = 1 - {expected:.4f}: the fraction of ILLEGAL top moves.")
    raise CheckFailed(f"legal_top1_rate returned {out:.4f}; expected {expected:.4f} (the top move is legal at 93 of "
                      "124 positions). Take logits.argmax(-1), gather `legal` there, and average over all positions.")


def check_legal_probability(fn: Callable) -> None:
    """``fn(logits, legal)`` -> ``[n, pos]``: the model's probability on the legal moves."""
    g = torch.Generator().manual_seed(1)
    n, pos, vocab = 3, 31, 32
    legal = _masks(n, pos, vocab, g)
    mass = torch.rand(n, pos, generator=g, dtype=torch.float64) * 0.98 + 0.01
    logits = _planted_logits(legal, mass, g)
    out = _score(fn, logits, legal, "(hand-made logits whose softmax puts a known mass on the legal moves, "
                                    "[3, 31, 32])")
    out = expect_tensor(out, "the legal probability", shape=(n, pos), dims="n pos", floating=True)
    out = out.detach().cpu().double()
    expected = mass
    if torch.allclose(out, expected, atol=1e-4):
        passed("legal_probability recovers the planted probability mass on the legal moves")
        return
    idx = tuple(int(i) for i in torch.unravel_index((out - expected).abs().argmax(), out.shape))
    shown = f"at [{idx[0]}, {idx[1]}] yours {out[idx].item():.4f}, expected {expected[idx].item():.4f}"
    if torch.allclose(out, torch.ones_like(out), atol=1e-4):
        raise CheckFailed(
            f"every value is 1.0 ({shown}). Looks like you masked the illegal logits (to -inf) BEFORE the softmax: "
            "the softmax then renormalises over the legal moves alone, and they always get everything. Take the "
            "softmax over all 32 moves first, then add up the legal ones.")
    wrong_dim = (logits.double().softmax(1) * legal).sum(-1)
    if torch.allclose(out, wrong_dim, atol=1e-4):
        raise CheckFailed(f"{shown}. Looks like you took the softmax over the positions (dim 1), not over the "
                          "moves (the last dim): each position's distribution is over its 32 moves.")
    if (out < -1e-6).any() or (out > 1 + 1e-6).any():
        raise CheckFailed(
            f"some values are outside [0, 1] ({shown}; min {out.min().item():.2f}, max {out.max().item():.2f}): a "
            "probability mass cannot be. Looks like you summed logits or log-probabilities; turn the logits into "
            "probabilities with .softmax(-1) first.")
    raise CheckFailed(f"wrong legal probability, {shown}. It is (logits.softmax(-1) * legal).sum(-1): the "
                      "probability of all legal moves of a position together.")


def check_kl_from_uniform_legal(fn: Callable) -> None:
    """``fn(logits, legal)`` -> ``[n, pos]``: KL(ideal || model) in nats, where the ideal puts
    1/k on each of the k legal moves."""
    g = torch.Generator().manual_seed(2)
    n, pos, vocab = 3, 31, 32
    legal = _masks(n, pos, vocab, g)
    k = legal.sum(-1).double()
    # Row 0: the model's probability sits on the legal moves only, unevenly (the reversed KL is
    # finite there, and differs); position 0..3 of row 0 have one legal move.
    mass = torch.rand(n, pos, generator=g, dtype=torch.float64) * 0.9 + 0.05
    mass[0] = 1 - 1e-9
    logits = _planted_logits(legal, mass, g)
    # Row 2, positions 0..9: exactly the ideal (uniform on the legal moves, -30 elsewhere): KL = 0.
    logits[2, :10] = torch.where(legal[2, :10], 0.0, -30.0)
    logq = logits.double().log_softmax(-1)
    # KL(u || q) = sum_legal (1/k) (log(1/k) - log q) = -log k - mean over the legal moves of log q
    expected = -k.log() - (logq * legal).sum(-1) / k
    out = _score(fn, logits, legal, "(hand-made logits with known probabilities, [3, 31, 32])")
    out = expect_tensor(out, "the KL divergence", shape=(n, pos), dims="n pos", floating=True)
    out = out.detach().cpu().double()
    if torch.allclose(out, expected, atol=1e-3, rtol=1e-3):
        passed("kl_from_uniform_legal matches KL(uniform on the legal moves || model), zero where the model is ideal")
        return
    idx = tuple(int(i) for i in torch.unravel_index((out - expected).abs().argmax(), out.shape))
    shown = f"at [{idx[0]}, {idx[1]}] yours {out[idx].item():.4f}, expected {expected[idx].item():.4f}"
    q = logq.exp()
    if not torch.isfinite(out).all():
        raise CheckFailed(
            f"some values are inf or NaN ({shown}). Looks like you computed KL(model || ideal): the ideal is 0 on "
            "the illegal moves, so log(model / ideal) is infinite wherever the model puts any probability on them. "
            "The divergence wanted is KL(ideal || model) = sum over the LEGAL moves of (1/k) log((1/k) / q).")
    reversed_kl = (q * (q.clamp_min(1e-30).log() + k.log()[..., None]) * legal).sum(-1)
    if torch.allclose(out[0], reversed_kl[0], atol=1e-3, rtol=1e-3):
        raise CheckFailed(f"{shown}: you computed KL(model || ideal), the divergence in the other direction. "
                          "The expectation is taken under the ideal: sum over the legal moves of "
                          "(1/k) * (log(1/k) - log q).")
    if torch.allclose(out, expected / math.log(2), atol=1e-3, rtol=1e-3):
        raise CheckFailed(f"{shown}: your values are the expected ones divided by ln 2, bits instead of nats. "
                          "Use the natural log (log_softmax, torch.log).")
    ce = -(logq * legal).sum(-1) / k
    if torch.allclose(out, ce, atol=1e-3, rtol=1e-3):
        raise CheckFailed(f"{shown}: you returned the cross-entropy of the ideal against the model, -mean log q over "
                          "the legal moves. The KL subtracts the ideal's own entropy, log k: it is 0 for a model "
                          "that is exactly uniform on the legal moves.")
    uniform_all = -math.log(vocab) - logq.mean(-1)
    if torch.allclose(out, uniform_all, atol=1e-3, rtol=1e-3):
        raise CheckFailed(f"{shown}: that is the KL from the uniform distribution over all {vocab} moves. The ideal "
                          "predictor is uniform over the k LEGAL moves only (1/k each, 0 elsewhere).")
    if (out[2, :10].abs() > 1e-3).any():
        raise CheckFailed(f"{shown}. Where the model is exactly uniform on the legal moves ([2, :10]) the KL must be "
                          f"0; yours is up to {out[2, :10].abs().max().item():.3f} there.")
    raise CheckFailed(f"wrong KL, {shown}. KL(ideal || model) = sum over the legal moves of (1/k)(log(1/k) - log q), "
                      "with log q = logits.log_softmax(-1), in nats.")
