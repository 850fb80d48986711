"""Othello on a small board: the rules, batched over many games at once, and random legal games.

The board is ``SIZE x SIZE`` (6 by default: 36 squares, the 4 centre squares start occupied, so a
full game has 32 moves). Squares are numbered row by row, ``0 .. SIZE*SIZE - 1``; a board is an
int8 array with 0 = empty, 1 = black, -1 = white. Black moves first.

A move is legal when it flanks at least one line of the opponent's pieces between the new piece
and one of the mover's own, in any of the 8 directions; every flanked line flips. A player with
no legal move passes; the game ends when neither player can move.

Everything is vectorised over a batch of boards (numpy), because move-by-move Python would cost
far more than training on the games: :func:`random_games` plays many games at once.

Model tokens are the playable squares (all but the 4 centre ones), ``0 .. N_MOVES - 1``, in
square order (:data:`SQUARE_OF_TOKEN`, :data:`TOKEN_OF_SQUARE`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 6
N_SQUARES = SIZE * SIZE
EMPTY, BLACK, WHITE = 0, 1, -1
_DIRECTIONS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
_CENTRE = [(SIZE // 2 - 1) * SIZE + SIZE // 2 - 1, (SIZE // 2 - 1) * SIZE + SIZE // 2,
           (SIZE // 2) * SIZE + SIZE // 2 - 1, (SIZE // 2) * SIZE + SIZE // 2]
SQUARE_OF_TOKEN = np.array([s for s in range(N_SQUARES) if s not in _CENTRE])
N_MOVES = len(SQUARE_OF_TOKEN)  # 32 on the 6 x 6 board
TOKEN_OF_SQUARE = np.full(N_SQUARES, -1)
TOKEN_OF_SQUARE[SQUARE_OF_TOKEN] = np.arange(N_MOVES)


def on_board(per_token: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Per-move values ``[..., N_MOVES]`` (e.g. the model's move probabilities) laid out on the
    board, ``[..., N_SQUARES]``, with ``fill`` on the centre squares (which are never a move)."""
    per_token = np.asarray(per_token)
    if per_token.shape[-1] != N_MOVES:
        raise ValueError(f"on_board expects [..., {N_MOVES}] values (one per move token), got shape "
                         f"{per_token.shape}")
    out = np.full(per_token.shape[:-1] + (N_SQUARES,), fill,
                  dtype=np.result_type(per_token.dtype, np.asarray(fill).dtype))
    out[..., SQUARE_OF_TOKEN] = per_token
    return out


def square_name(square: int) -> str:
    """A square's name as players write it: column letter, then row number (``0`` -> ``"a1"``,
    ``35`` -> ``"f6"`` on the 6 x 6 board)."""
    if not 0 <= square < N_SQUARES:
        raise ValueError(f"square must be in 0..{N_SQUARES - 1}, got {square}")
    return f"{'abcdefgh'[square % SIZE]}{square // SIZE + 1}"


# Bitboards: bit s of a uint64 is square s. A board is two bitboards, the mover's pieces and
# the opponent's; a step in a direction is a shift, masked so that a step off the right (left)
# edge does not wrap round to the next row's left (right) end.
_FULL = np.uint64((1 << N_SQUARES) - 1)
_COL = [sum(1 << (r * SIZE + c) for r in range(SIZE)) for c in (0, SIZE - 1)]
_STEPS = [(dr * SIZE + dc, np.uint64(((1 << N_SQUARES) - 1) & ~(_COL[0] if dc == 1 else _COL[1] if dc == -1 else 0)))
          for dr, dc in _DIRECTIONS]
_BITS = np.uint64(1) << np.arange(N_SQUARES, dtype=np.uint64)


def _step(x: np.ndarray, k: int, mask: np.uint64) -> np.ndarray:
    return ((x << np.uint64(k)) if k > 0 else (x >> np.uint64(-k))) & mask


def _runs(x: np.ndarray, opp: np.ndarray, k: int, mask: np.uint64) -> np.ndarray:
    """The opponent pieces in an unbroken line from ``x`` in one direction (at most SIZE - 2)."""
    t = _step(x, k, mask) & opp
    for _ in range(SIZE - 3):
        t |= _step(t, k, mask) & opp
    return t


def _legal_bits(own: np.ndarray, opp: np.ndarray) -> np.ndarray:
    empty = ~(own | opp) & _FULL
    moves = np.zeros_like(own)
    for k, mask in _STEPS:
        moves |= _step(_runs(own, opp, k, mask), k, mask) & empty
    return moves


def _flip_bits(own: np.ndarray, opp: np.ndarray, move: np.ndarray) -> np.ndarray:
    out = np.zeros_like(own)
    for k, mask in _STEPS:
        t = _runs(move, opp, k, mask)
        out |= np.where((_step(t, k, mask) & own) != 0, t, np.uint64(0))
    return out


def initial_boards(n: int) -> np.ndarray:
    """``n`` starting boards ``[n, N_SQUARES]``: white on the main-diagonal centre squares."""
    boards = np.zeros((n, N_SQUARES), dtype=np.int8)
    a, b, c, d = _CENTRE
    boards[:, [a, d]] = WHITE
    boards[:, [b, c]] = BLACK
    return boards


def to_bits(boards: np.ndarray, player: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[n, N_SQUARES]`` boards -> the mover's and the opponent's bitboards (uint64 ``[n]``)."""
    rel = boards * player[:, None].astype(np.int8)
    return (np.where(rel == 1, _BITS, np.uint64(0)).sum(-1, dtype=np.uint64),
            np.where(rel == -1, _BITS, np.uint64(0)).sum(-1, dtype=np.uint64))


def from_bits(bits: np.ndarray) -> np.ndarray:
    """uint64 ``[n]`` -> bool ``[n, N_SQUARES]``."""
    return (bits[:, None] & _BITS) != 0


def legal_moves(boards: np.ndarray, player: np.ndarray) -> np.ndarray:
    """``[n, N_SQUARES]`` bool: the squares where ``player`` (``[n]`` of +1/-1) may move."""
    return from_bits(_legal_bits(*to_bits(boards, player)))


def play(boards: np.ndarray, player: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """The boards after ``player`` moves on ``squares`` (``[n]``; -1 = no move, board kept).
    Raises ``ValueError`` on an illegal move."""
    own, opp = to_bits(boards, player)
    moving = squares >= 0
    move = np.where(moving, _BITS[np.maximum(squares, 0)], np.uint64(0))
    flipped = _flip_bits(own, opp, move)
    bad = moving & ((flipped == 0) | ((move & (own | opp)) != 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"illegal move: square {squares[i]} on board {i} is taken or flips nothing")
    own, opp = own | move | flipped, opp & ~flipped
    p = player[:, None].astype(np.int8)
    return (from_bits(own) * p - from_bits(opp) * p).astype(np.int8)


@dataclass
class Games:
    """Random legal games. ``moves[i, t]`` is the square of move ``t`` (-1 after the end),
    ``players[i, t]`` who made it, ``boards[i, t]`` the board *after* it."""

    moves: np.ndarray  # [n, N_MOVES] int64
    players: np.ndarray  # [n, N_MOVES] int8
    boards: np.ndarray  # [n, N_MOVES, N_SQUARES] int8
    length: np.ndarray  # [n]

    def tokens(self) -> np.ndarray:
        """Moves as model tokens (``TOKEN_OF_SQUARE``), -1 after the end."""
        return np.where(self.moves >= 0, TOKEN_OF_SQUARE[np.maximum(self.moves, 0)], -1)


def random_games(n: int, seed: int = 0) -> Games:
    """``n`` games in which each player picks uniformly among its legal moves (passing when it
    has none), drawn with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    black, white = to_bits(initial_boards(n), np.full(n, BLACK, dtype=np.int8))
    player = np.full(n, BLACK, dtype=np.int8)
    moves = np.full((n, N_MOVES), -1, dtype=np.int64)
    players = np.zeros((n, N_MOVES), dtype=np.int8)
    history = np.zeros((n, N_MOVES, N_SQUARES), dtype=np.int8)
    length = np.zeros(n, dtype=np.int64)
    for t in range(N_MOVES):
        own = np.where(player == BLACK, black, white)
        opp = np.where(player == BLACK, white, black)
        legal = _legal_bits(own, opp)
        stuck = legal == 0  # pass: the other player moves instead (if it cannot, the game is over)
        own, opp = np.where(stuck, opp, own), np.where(stuck, own, opp)
        player = np.where(stuck, -player, player).astype(np.int8)
        legal = np.where(stuck, _legal_bits(own, opp), legal)
        alive = legal != 0
        # a uniform choice among the legal squares: random keys, masked, argmax
        keys = np.where(from_bits(legal), rng.random((n, N_SQUARES)), -1.0)
        choice = np.where(alive, keys.argmax(-1), -1)
        move = np.where(alive, _BITS[np.maximum(choice, 0)], np.uint64(0))
        flipped = _flip_bits(own, opp, move)
        own, opp = own | move | flipped, opp & ~flipped
        black = np.where(player == BLACK, own, opp)
        white = np.where(player == BLACK, opp, own)
        moves[:, t] = choice
        players[:, t] = np.where(alive, player, 0)
        history[:, t] = from_bits(black).astype(np.int8) - from_bits(white).astype(np.int8)
        length += alive
        player = (-player).astype(np.int8)
    return Games(moves, players, history, length)
