"""Checks for section 3, "Reading the model with the probe" (book/chapters/othello/03-reading.md).

No check runs a model. ``probe_directions`` gets a hand-made probe ``W [d, 36, 3]`` whose three
class vectors per square are built from a planted orthonormal triple (a "blank" direction, a
"mine" direction and an offset shared by all three classes), so both answers are known by
construction; ``cosine_table`` vectors and directions built from an orthonormal basis with
known cosines and arbitrary lengths; ``neuron_move_effect`` an unembedding with orthonormal
columns and ``W_out = T @ W_U.T``, so the direct effect is the planted table ``T`` (with a
constant per neuron that centring must remove, and planted moves on tokens whose square differs
from their number); ``flipped_squares`` the first move of the game (black on c2 flips c3, read off
the board) and engine games, tested with invariants of the rules (each flip gains the mover two
discs, the placed disc one); ``attention_to_own_moves`` hand-made attention patterns (all on the
previous token, all on the token itself, uniform, two back) whose fractions are counted by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from interpbook.checks import CheckFailed, call, expect_tensor, passed
from interpbook.datasets import othello as game

__all__ = [
    "check_probe_directions",
    "check_cosine_table",
    "check_neuron_move_effect",
    "check_flipped_squares",
    "check_attention_to_own_moves",
]

_CENTRE = [14, 15, 20, 21]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


# --- probe_directions -------------------------------------------------------------------------

def _planted_probe(d: int = 48):
    """W [d, 36, 3] with, per square, an orthonormal (u, v, c): class 0 = 2u + 3c,
    class 1 = -u + 0.7v + 3c, class 2 = -u - 0.7v + 3c. Centred blank = 3u, mine = 1.4v."""
    g = torch.Generator().manual_seed(3)
    W = torch.zeros(d, game.N_SQUARES, 3)
    U, V, C = [], [], []
    for s in range(game.N_SQUARES):
        q = torch.linalg.qr(torch.randn(d, 3, generator=g))[0]
        u, v, c = q[:, 0], q[:, 1], q[:, 2]
        W[:, s, 0] = 2 * u + 3 * c
        W[:, s, 1] = -u + 0.7 * v + 3 * c
        W[:, s, 2] = -u - 0.7 * v + 3 * c
        U.append(u), V.append(v), C.append(c)
    return W, torch.stack(U), torch.stack(V)


def check_probe_directions(fn: Callable) -> None:
    """``fn(W)`` with ``W [d, 36, 3]`` returns ``(blank [36, d], mine [36, d])``, unit vectors."""
    W, U, V = _planted_probe()
    d = W.shape[0]
    out = call(fn, W.clone(), what=f"(a hand-made probe W of shape [{d}, 36, 3])")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"probe_directions should return a tuple (blank, mine); got {type(out).__name__}.")
    blank, mine = out
    blank = expect_tensor(blank, "blank", shape=(36, d), dims="square d_model", floating=True).detach().cpu().float()
    mine = expect_tensor(mine, "mine", shape=(36, d), dims="square d_model", floating=True).detach().cpu().float()
    for name, x in (("blank", blank), ("mine", mine)):
        norms = x.norm(dim=-1)
        if not torch.allclose(norms, torch.ones(36), atol=1e-4):
            raise CheckFailed(
                f"the rows of `{name}` have norms from {norms.min():.3f} to {norms.max():.3f}; each should be a unit "
                "vector (norm 1). Divide each direction by its norm: the page compares directions by cosine, and "
                "the probe's weight lengths depend on its training, not on the model.")
    cos_blank = (blank * U).sum(-1)
    if cos_blank.min() < 0.999:
        raw0 = _unit(W[:, :, 0].T)
        one_other = _unit((W[:, :, 0] - W[:, :, 1]).T)
        if torch.allclose(blank, raw0, atol=1e-3):
            raise CheckFailed(
                "`blank` is W[:, s, 0] normalised, without centring. A softmax probe's three class vectors for a "
                "square can all be shifted by the same vector without changing a single prediction, so "
                "W[:, s, 0] alone carries an arbitrary part shared by the three classes (here planted large). "
                "Subtract the mean of the other two classes: W[:, s, 0] - (W[:, s, 1] + W[:, s, 2]) / 2.")
        if torch.allclose(blank, one_other, atol=1e-3) or torch.allclose(blank, _unit((W[:, :, 0] - W[:, :, 2]).T),
                                                                          atol=1e-3):
            raise CheckFailed(
                "`blank` is W[:, s, 0] minus one of the other classes. That direction also contains part of 'mine "
                "vs theirs'. Subtract the mean of the other two: W[:, s, 0] - (W[:, s, 1] + W[:, s, 2]) / 2.")
        if torch.allclose(blank, _unit(W[:, :, 0]).T, atol=1e-3) or (blank * U).sum(-1).abs().max() < 0.5:
            raise CheckFailed(
                f"`blank` has cosine {cos_blank.min():.2f} (worst square) with the planted 'empty' direction. Row s "
                "should be the unit vector of W[:, s, 0] - (W[:, s, 1] + W[:, s, 2]) / 2: index the probe as "
                "W[d_model, square, class] and return [36, d_model].")
        raise CheckFailed(f"`blank` has cosine {cos_blank.min():.2f} (worst square) with the planted 'empty' "
                          "direction; expected 1. Use W[:, s, 0] - (W[:, s, 1] + W[:, s, 2]) / 2, normalised.")
    cos_mine = (mine * V).sum(-1)
    if cos_mine.max() < -0.999:
        raise CheckFailed("`mine` points the wrong way: it is W[:, s, 2] - W[:, s, 1] (theirs minus mine). The "
                          "direction that says 'this square is mine' is W[:, s, 1] - W[:, s, 2].")
    if cos_mine.min() < 0.999:
        raise CheckFailed(f"`mine` has cosine {cos_mine.min():.2f} (worst square) with the planted 'mine vs theirs' "
                          "direction; expected 1. Use W[:, s, 1] - W[:, s, 2] (class 1 is mine, class 2 theirs), "
                          "normalised.")
    passed("probe_directions returns the centred 'blank' and the 'mine minus theirs' unit vectors of every square")


# --- cosine_table -----------------------------------------------------------------------------

def check_cosine_table(fn: Callable) -> None:
    """``fn(vectors [m, d], directions [k, d])`` is the ``[m, k]`` table of cosine similarities."""
    g = torch.Generator().manual_seed(1)
    d, m, k = 12, 5, 3
    basis = torch.linalg.qr(torch.randn(d, d, generator=g))[0].T  # orthonormal rows
    # vector i = length_i * (coefficients over basis rows 0..3), coefficients of norm 1
    coef = _unit(torch.tensor([[0.8, 0.6, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5],
                               [0.0, 0.0, 0.6, 0.8], [-0.3, 0.4, 0.0, 0.866]]))
    lengths = torch.tensor([0.2, 5.0, 1.0, 3.0, 11.0])
    vectors = lengths[:, None] * coef @ basis[:4]
    scales = torch.tensor([0.5, 4.0, 9.0])
    directions = scales[:, None] * basis[:3]
    expected = coef[:, :3]
    out = call(fn, vectors.clone(), directions.clone(), what="(vectors [5, 12] and directions [3, 12] of "
                                                             "different lengths)")
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (k, m):
        raise CheckFailed(f"the table has shape [{k}, {m}] = [directions, vectors]; expected [{m}, {k}] = [vectors, "
                          "directions]: row i holds vector i's cosine with every direction.")
    out = expect_tensor(out, "the cosine table", shape=(m, k), dims="vectors directions",
                        floating=True).detach().cpu().float()
    if torch.allclose(out, expected, atol=1e-4):
        passed("cosine_table gives cosine similarities, whatever the lengths of the vectors and directions")
        return
    if torch.allclose(out, vectors @ directions.T, atol=1e-3):
        raise CheckFailed("the table holds plain dot products: they grow with the lengths of the vectors and of the "
                          "directions (here 0.2 to 11). Divide each vector and each direction by its norm first.")
    if torch.allclose(out, vectors @ _unit(directions).T, atol=1e-3):
        raise CheckFailed("you normalised the directions but not the vectors: the result still scales with each "
                          "vector's length. Normalise both.")
    if torch.allclose(out, _unit(vectors) @ directions.T, atol=1e-3):
        raise CheckFailed("you normalised the vectors but not the directions: the result still scales with each "
                          "direction's length. Normalise both.")
    if out.abs().max() > 1 + 1e-4:
        raise CheckFailed(f"the table has values up to {out.abs().max():.2f}; a cosine lies in [-1, 1]. Normalise "
                          "each row of `vectors` and of `directions` (along the last axis, d).")
    raise CheckFailed(f"the table differs from the cosines known by construction, e.g. row 0: {out[0].tolist()} "
                      f"(expected {expected[0].tolist()}). Normalise along the last axis (d) of both inputs.")


# --- neuron_move_effect -----------------------------------------------------------------------

def check_neuron_move_effect(fn: Callable) -> None:
    """``fn(W_out [d_mlp, d], W_U [d, 32])`` is the centred direct effect on the 32 move logits,
    placed on the 36 squares, NaN at the 4 centre squares."""
    g = torch.Generator().manual_seed(2)
    d, d_mlp = 40, 6
    W_U = torch.linalg.qr(torch.randn(d, d, generator=g))[0][:, : game.N_MOVES]  # orthonormal columns
    T = 0.1 * torch.randn(d_mlp, game.N_MOVES, generator=g)
    # planted moves on tokens whose square is not their number (token 14 -> square 16, ...)
    for n, (tok, val) in enumerate([(14, 3.0), (20, -4.0), (31, 2.5), (0, 1.5), (17, 5.0), (25, -2.0)]):
        T[n, tok] += val
    T += torch.tensor([2.0, -1.0, 0.5, 7.0, 0.0, -3.0])[:, None]  # a constant per neuron: centring removes it
    W_out = T @ W_U.T  # so that W_out @ W_U = T exactly
    Tc = T - T.mean(-1, keepdim=True)
    expected = torch.full((d_mlp, game.N_SQUARES), float("nan"))
    expected[:, torch.from_numpy(game.SQUARE_OF_TOKEN)] = Tc
    out = call(fn, W_out.clone(), W_U.clone(), what=f"(W_out [{d_mlp}, {d}], W_U [{d}, 32])")
    out = expect_tensor(out, "the move effects", shape=(d_mlp, game.N_SQUARES), dims="d_mlp square",
                        floating=True).detach().cpu().float()
    centre = torch.zeros(game.N_SQUARES, dtype=torch.bool)
    centre[_CENTRE] = True
    nan = torch.isnan(out)
    if nan[:, ~centre].any():
        bad = sorted({int(s) for s in nan.any(0).nonzero()[:, 0]} - set(_CENTRE))
        if bad == [32, 33, 34, 35]:
            raise CheckFailed(
                "squares 32 to 35 (c6, d6, e6, f6) are NaN and hold no effect: looks like token i was put on square "
                "i. Token i stands for square game.SQUARE_OF_TOKEN[i] (token 14 is square 16: the 4 centre squares "
                "have no token): index the output with SQUARE_OF_TOKEN.")
        raise CheckFailed(f"NaN on playable squares ({[game.square_name(s) for s in bad[:4]]}); only the 4 centre "
                          "squares (14, 15, 20, 21) have no token and should be NaN.")
    if not nan[:, centre].all():
        raise CheckFailed("the 4 centre squares (14, 15, 20, 21) should be NaN: no move is ever played there, so "
                          "there is no logit to show (a 0 would read as 'no effect' on the board plots).")
    got = out[:, ~centre]
    want = expected[:, ~centre]
    if torch.allclose(got, want, atol=1e-4):
        passed("neuron_move_effect gives each neuron's centred direct effect on the moves, square by square")
        return
    uncentred = torch.full_like(expected, float("nan"))
    uncentred[:, torch.from_numpy(game.SQUARE_OF_TOKEN)] = T
    if torch.allclose(got, uncentred[:, ~centre], atol=1e-3):
        raise CheckFailed(
            "the effects are not centred over the moves: here each neuron also adds a constant to all 32 logits "
            "(up to 7), which changes no probability after the softmax. Subtract each neuron's mean over the 32 "
            "moves before placing them on the board.")
    if torch.allclose(got - got.mean(-1, keepdim=True), want - want.mean(-1, keepdim=True), atol=1e-3):
        raise CheckFailed("the effects are off by a constant per neuron: centre over the 32 moves (the tokens), "
                          "before placing them on the board, so that each row has mean 0 over the 32 moves.")
    # token i placed on square i: compare the playable squares below 32 with token i = square i
    same_number = [s for s in range(game.N_MOVES) if s not in _CENTRE]
    if torch.allclose(out[:, same_number], Tc[:, same_number], atol=1e-3):
        raise CheckFailed("token i was put on square i. Token i stands for square game.SQUARE_OF_TOKEN[i]: from "
                          "token 14 on they differ (token 14 is square 16), because the 4 centre squares have no "
                          "token.")
    n, s = divmod(int((got - want).abs().argmax()), got.shape[1])
    raise CheckFailed(f"the effect of neuron {n} on square {game.square_name(int(torch.arange(36)[~centre][s]))} is "
                      f"{got[n, s]:.3f}; expected {want[n, s]:.3f}. The direct effect is W_out @ W_U "
                      "[d_mlp, 32], centred over the 32 moves, then placed on the squares with SQUARE_OF_TOKEN.")


# --- flipped_squares --------------------------------------------------------------------------

def _flips(fn: Callable, before: np.ndarray, after: np.ndarray, what: str) -> torch.Tensor:
    b, a = torch.from_numpy(before.astype(np.int8)), torch.from_numpy(after.astype(np.int8))
    out = call(fn, b.clone(), a.clone(), what=what)
    out = expect_tensor(out, "the flipped squares", shape=tuple(b.shape), dims="n square")
    if out.dtype != torch.bool:
        raise CheckFailed(f"the flipped squares have dtype {out.dtype}; return a boolean tensor (True where a disc "
                          "was flipped), so that the page can use it as a mask.")
    return out.cpu()


def check_flipped_squares(fn: Callable) -> None:
    """``fn(board_before [n, 36], board_after [n, 36])`` is True on the squares whose disc changed
    colour, not on the square of the new disc."""
    start = game.initial_boards(1)
    black = np.array([game.BLACK], dtype=np.int8)
    after = game.play(start, black, np.array([8]))  # black on c2 flips c3 (square 14)
    out = _flips(fn, start, after, "(the start, and the board after black plays c2)")
    got = [game.square_name(int(s)) for s in out[0].nonzero()[:, 0]]
    if got != ["c3"]:
        if set(got) == {"c2", "c3"}:
            raise CheckFailed("after black plays c2 from the start you returned c2 and c3. c2 is the new disc, "
                              "placed on an empty square, not flipped: only a square that held a disc before and "
                              "holds the other colour after was flipped.")
        if len(got) > 20:
            raise CheckFailed(f"after black plays c2 from the start you marked {len(got)} squares, among them empty "
                              "ones: looks like `before == -after`, which is also true where both are 0. A flipped "
                              "square held a disc before (before != 0) and holds the other colour after.")
        raise CheckFailed(f"after black plays c2 from the start, only c3 (square 14) is flipped; you returned {got}.")
    g = game.random_games(24, seed=5)
    n = len(g.moves)
    before = np.concatenate([game.initial_boards(n)[:, None], g.boards[:, :-1]], axis=1).reshape(-1, 36)
    after = g.boards.reshape(-1, 36)
    mover = g.players.reshape(-1).astype(np.int64)
    out = _flips(fn, before, after, f"({len(before)} positions from 24 random games: the board before and after "
                                    "each move; after a game ends both are the same)").numpy()
    # each flipped disc gains the mover 2 (one less for the opponent), the new disc 1
    gain = ((after.astype(np.int64) - before) * mover[:, None]).sum(-1)
    moved = g.moves.reshape(-1) >= 0
    n_flips = out.sum(-1)
    if (out & (before == 0)).any():
        raise CheckFailed("some flipped squares were empty before the move; the newly placed disc is not flipped "
                          "(it was not there before). Keep only squares with a disc before: before != 0.")
    if (out & (after != -before)).any():
        raise CheckFailed("some squares you marked did not change colour. A flipped square holds the other colour "
                          "after the move: after == -before, with before != 0.")
    expected_flips = np.where(moved, (gain - 1) // 2, 0)
    if not (n_flips == expected_flips).all():
        i = int(np.flatnonzero(n_flips != expected_flips)[0])
        turned_white = (before == game.BLACK) & (after == game.WHITE)
        turned_black = (before == game.WHITE) & (after == game.BLACK)
        for colour, other in (("black", turned_white), ("white", turned_black)):
            if other.any() and not (out & other).any():
                raise CheckFailed(f"you marked only squares that turned {colour}; the other player's moves flip "
                                  "discs too. A square was flipped when it changed colour either way.")
        raise CheckFailed(f"position {i}: the mover gained {gain[i]} discs, so {expected_flips[i]} were flipped "
                          f"(each flip is +2, the new disc +1); you marked {n_flips[i]}.")
    passed("flipped_squares marks exactly the discs a move turned over, on engine games")


# --- attention_to_own_moves -------------------------------------------------------------------

def _own_patterns(b: int = 3, n: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Patterns [b, 4, n, n] and the fraction per head counted by hand. Head 0: all on the
    previous token (q - 1: the next mover's own move), fraction 1 for every q >= 1. Head 1: all on
    the token itself (the move just made), 0. Head 2: uniform over k <= q, ceil(q/2)/(q+1). Head 3:
    two back (q - 2, the just-moved player's previous move), 0 except q = 1, where it can only
    look at key 0 (q - k = 1): 1. The last batch element swaps heads 0 and 3."""
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    p = torch.zeros(4, n, n)
    p[0] = (k == (q - 1).clamp(min=0)).float()
    p[1] = (k == q).float()
    p[2] = (k <= q).float() / (q + 1)
    p[3] = (k == (q - 2).clamp(min=0)).float()
    pattern = p[None].repeat(b, 1, 1, 1)
    pattern[-1, [0, 3]] = pattern[-1, [3, 0]]
    per_head = torch.tensor([1.0, 0.0, sum(math.ceil(i / 2) / (i + 1) for i in range(1, n)) / (n - 1),
                             1.0 / (n - 1)])
    swapped = per_head.clone()
    swapped[[0, 3]] = per_head[[3, 0]]
    expected = ((b - 1) * per_head + swapped) / b
    return pattern, expected


def check_attention_to_own_moves(fn: Callable) -> None:
    """``fn(pattern [b, h, q, k])`` is, per head, the mean over the batch and the query positions
    q >= 1 of the attention on keys k < q with q - k odd (the next mover's own earlier moves)."""
    pattern, expected = _own_patterns()
    b, h, n, _ = pattern.shape
    out = call(fn, pattern.clone(), what=f"(hand-made patterns [{b}, {h}, {n}, {n}]: head 0 all on the previous "
                                         "token, head 1 all on itself, head 2 uniform, head 3 two back; the last "
                                         "batch element swaps heads 0 and 3)")
    if isinstance(out, (list, tuple)):
        out = torch.tensor([float(v) for v in out])
    out = expect_tensor(out, "the fraction per head", shape=(h,), dims="head", floating=True).detach().cpu().float()
    if torch.allclose(out, expected, atol=1e-4):
        passed(f"attention_to_own_moves: {', '.join(f'{v:.3f}' for v in out.tolist())} on the hand-made heads")
        return
    shown = ", ".join(f"{v:.3f}" for v in out.tolist())
    want = ", ".join(f"{v:.3f}" for v in expected.tolist())
    # Rows sum to 1 over k <= q: the keys with q - k even (the player who just moved) take the
    # rest, 1 - expected, of which the query's own position takes the diagonal.
    on_self = pattern.diagonal(dim1=-2, dim2=-1)[..., 1:].mean((0, 2))
    if torch.allclose(out, 1 - expected, atol=1e-3) or torch.allclose(out, 1 - expected - on_self, atol=1e-3):
        raise CheckFailed(
            f"you got [{shown}], expected [{want}]: the parity is swapped. Position q holds the move just made, by "
            "the player who is NOT to move next; the next mover made moves q - 1, q - 3, ...: keys with q - k odd. "
            "Head 0, which looks only at the previous token, should score 1 on the first two batch elements.")
    if abs(out[0] - expected[0] * (n - 1) / n) < 1e-3:
        raise CheckFailed(f"you got [{shown}], expected [{want}]: looks like query position 0 was included in the "
                          "mean. The first move has no earlier move to look at (its fraction is always 0): "
                          "average over q >= 1 only.")
    if out.max() < 0.3 and out[0] > 0:
        raise CheckFailed(f"you got [{shown}], expected [{want}]: looks like a mean over the keys. The fraction of "
                          "attention on the next mover's moves is the SUM of the pattern over those keys (each row "
                          "sums to 1); then average over the batch and the queries.")
    if out[1] > 1e-3:
        raise CheckFailed(f"you got [{shown}], expected [{want}]: head 1 looks only at the query's own position, "
                          "which is the move just made, not the next mover's. Count only keys k < q with q - k odd.")
    raise CheckFailed(f"you got [{shown}], expected [{want}] (head 0: all on the previous token; 1: on itself; "
                      "2: uniform over k <= q; 3: two back). Sum the pattern over keys k < q with q - k odd, then "
                      "average over the batch and the query positions q >= 1.")
