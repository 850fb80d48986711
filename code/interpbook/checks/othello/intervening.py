"""Checks for section 4, "Intervening" (book/chapters/othello/04-intervening.md).

How the inputs are built, so that every answer is known without a second copy of the solution:

* ``flip_square`` gets a hand-typed relative board (0 empty, 1 mine, 2 theirs); flipping a piece
  must swap 1 and 2 at that square alone, leave the caller's tensor untouched, and refuse an
  empty square with a ``ValueError``.
* ``legal_after`` gets positions of random games from the engine (``game.random_games``, seeded),
  turned into relative boards for the player who moves next (white to move included, and a
  position after a pass); the answer is ``game.legal_moves`` on the absolute board with the real
  mover, read at the 32 token squares.
* ``flip_delta`` gets synthetic probes (random ``W``, ``b``, ``x``): the probe's logits after the
  edit are known analytically, the gap ``new - cur`` must become ``-gap + scale * (|gap| + 2)``.
  Rows include one where the probe already prefers ``new`` (negative gap) and one where it reads
  the square as empty.
* ``edited_log_probs`` runs the real ``othello-mini`` on engine games; the reference adds the
  delta at the same single position through a *different* hook point (the previous block's
  ``hook_resid_post``, which is the same tensor), and a zero delta must give the clean log-probs.
* ``follows_edit`` gets hand-made log-probs and legal sets, one row per rule (and per way of
  getting it wrong).
* ``random_like`` gets rows of very different norms; the output must keep each row's norm, point
  in a direction unrelated to the row and to the other rows, and depend on ``seed`` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_no_leftover_hooks, expect_tensor, passed
from interpbook.datasets import othello as game

__all__ = [
    "check_flip_square",
    "check_legal_after",
    "check_flip_delta",
    "check_edited_log_probs",
    "check_follows_edit",
    "check_random_like",
]


# --- flip_square ------------------------------------------------------------------------------

def _hand_board() -> torch.Tensor:
    """A relative 6 x 6 board typed by hand: 0 empty, 1 mine, 2 theirs."""
    return torch.tensor([
        0, 0, 0, 0, 0, 0,
        0, 2, 1, 0, 0, 0,
        0, 0, 1, 2, 0, 0,
        0, 0, 2, 1, 1, 0,
        0, 0, 0, 2, 0, 0,
        0, 0, 0, 0, 0, 0,
    ], dtype=torch.long)


def check_flip_square(fn: Callable) -> None:
    """``fn(states [36], square) -> [36]``: 1 <-> 2 at ``square``, everything else unchanged, the
    input untouched; an empty square raises ``ValueError``."""
    board = _hand_board()
    for square in (8, 7, 15, 21, 27):  # mine, theirs, theirs (a centre square), mine (centre), theirs
        before = board.clone()
        out = call(fn, board, square, what=f"(a hand-typed board; square {square}, {game.square_name(square)})")
        if not torch.equal(board, before):
            raise CheckFailed(
                f"after flip_square(states, {square}) the *input* tensor had changed: you flipped the piece in place. "
                "The page passes views of the big `states` tensor, so an in-place edit would corrupt the data set. "
                "Work on `states.clone()`.")
        out = expect_tensor(out, f"flip_square(states, {square})", shape=(36,), dims="36 squares")
        expected = board.clone()
        expected[square] = 3 - board[square]
        got = out.cpu().long()
        if got[square] == board[square]:
            raise CheckFailed(f"square {square} still holds {int(board[square])} after the flip; it should hold "
                              f"{int(expected[square])} (1 = mine and 2 = theirs swap).")
        if got[square] != expected[square]:
            raise CheckFailed(
                f"square {square} held {int(board[square])} and now holds {int(got[square])}; expected "
                f"{int(expected[square])}. The encoding is 0 empty, 1 mine, 2 theirs, so a flip maps 1 -> 2 and 2 -> 1 "
                "(3 - state), not a sign change or 1 - state.")
        other = torch.ones(36, dtype=torch.bool)
        other[square] = False
        if not torch.equal(got[other], board[other]):
            changed = [int(s) for s in (got != board).nonzero().flatten() if s != square]
            raise CheckFailed(f"flipping square {square} also changed squares {changed}. A flip changes one piece "
                              "(Othello's captures are the engine's business, not this edit's).")
    empty = 0
    try:
        fn(board.clone(), empty)
    except ValueError:
        pass
    except NotImplementedError:
        raise CheckFailed("`flip_square` still raises NotImplementedError on an empty square.") from None
    except Exception as e:  # noqa: BLE001  (the learner's bug, reported with its type)
        raise CheckFailed(f"flip_square(states, 0) on an empty square raised {type(e).__name__}: {e}; raise a "
                          "ValueError instead (an empty square has no piece to flip).") from e
    else:
        raise CheckFailed("flip_square(states, 0) returned although square 0 is empty. There is no piece to flip: "
                          "raise ValueError, so that a mistake in choosing squares cannot pass silently.")
    passed("flip_square swaps mine and theirs on one square, leaves the input alone and refuses an empty square")


# --- legal_after ------------------------------------------------------------------------------

def _engine_positions() -> tuple[np.ndarray, np.ndarray]:
    """Boards after some move of seeded random games, and who moves next (white to move at half of
    them; one position after a pass when the games hold one)."""
    g = game.random_games(60, seed=3)
    picks = []
    for i in range(len(g.moves)):
        t = (3 * i) % max(int(g.length[i]) - 1, 1)
        if t + 1 < g.length[i]:
            picks.append((i, t))
    passes = [(i, t) for i in range(len(g.moves)) for t in range(int(g.length[i]) - 1)
              if g.players[i, t + 1] == g.players[i, t]]
    picks = picks[:24] + passes[:2]
    idx = np.array(picks)
    return g.boards[idx[:, 0], idx[:, 1]], g.players[idx[:, 0], idx[:, 1] + 1]


def _relative(boards: np.ndarray, mover: np.ndarray) -> torch.Tensor:
    rel = boards * mover[:, None]
    return torch.from_numpy(np.where(rel == 0, 0, np.where(rel == 1, 1, 2)).astype(np.int64))


def check_legal_after(fn: Callable) -> None:
    """``fn(states [n, 36]) -> bool [n, 32]``: the legal moves, as tokens, of the player to move
    (whose pieces are the 1s) on relative boards."""
    boards, mover = _engine_positions()
    states = _relative(boards, mover)
    n = len(states)
    expected = torch.from_numpy(game.legal_moves(boards, mover)[:, game.SQUARE_OF_TOKEN])
    out = call(fn, states.clone(), what=f"({n} relative boards from seeded random games)")
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (n, game.N_SQUARES):
        raise CheckFailed(
            f"legal_after returned shape {list(out.shape)}: one entry per *square*. The model's outputs are the 32 "
            "tokens (the playable squares, without the 4 centre ones): index the squares with game.SQUARE_OF_TOKEN.")
    out = expect_tensor(out, "legal_after(states)", shape=(n, game.N_MOVES), dims="n, 32 tokens")
    if out.dtype != torch.bool:
        raise CheckFailed(f"legal_after returned dtype {out.dtype}; return a bool tensor (True = legal).")
    got = out.cpu()
    if torch.equal(got, expected):
        passed(f"legal_after matches the engine on {n} positions (white to move and after a pass included)")
        return
    theirs = torch.from_numpy(game.legal_moves(boards, -mover)[:, game.SQUARE_OF_TOKEN])
    if torch.equal(got, theirs):
        raise CheckFailed(
            "you returned the legal moves of the *opponent* (the 2s). On a relative board the player to move owns "
            "the 1s: map 1 -> +1 and 2 -> -1 and ask game.legal_moves for player +1 (or 1 -> -1, 2 -> +1 and "
            "player -1), whatever the real colours were.")
    if not got.any():
        raise CheckFailed(
            "no move is legal anywhere. game.legal_moves wants a board of +1 / -1 / 0 (int8): did you pass the 0/1/2 "
            "states unchanged? Then the 2s are neither player's pieces and nothing can be flanked.")
    bad = int((got != expected).any(-1).nonzero()[0])
    raise CheckFailed(
        f"on position {bad} you marked tokens {got[bad].nonzero().flatten().tolist()} legal; the engine says "
        f"{expected[bad].nonzero().flatten().tolist()}. Build a +1/-1/0 board with the mover's pieces (1s) as +1, call "
        "game.legal_moves(board, player) with that player, and keep the columns game.SQUARE_OF_TOKEN.")


# --- flip_delta -------------------------------------------------------------------------------

def _probe_case() -> dict[str, Any]:
    g = torch.Generator().manual_seed(11)
    n, d = 8, 24
    W = torch.randn(n, d, 3, generator=g) * 0.7
    b = torch.randn(n, 3, generator=g) * 2.0
    x = torch.randn(n, d, generator=g) * 3.0
    cur = torch.tensor([1, 2, 1, 2, 1, 2, 1, 2])
    new = 3 - cur
    rows = torch.arange(n)
    logits = torch.einsum("nd,ndk->nk", x, W) + b
    # Row 1: the probe already reads `new` (negative gap); row 2: it reads the square as empty.
    b[1, new[1]] += logits[1, cur[1]] - logits[1, new[1]] + 1.5
    b[2, 0] += logits[2].max() - logits[2, 0] + 1.5
    logits = torch.einsum("nd,ndk->nk", x, W) + b
    assert logits[1, new[1]] > logits[1, cur[1]] and logits[2].argmax() == 0
    gap = logits[rows, cur] - logits[rows, new]
    direction = W[rows, :, new] - W[rows, :, cur]
    return dict(W=W, b=b, x=x, cur=cur, new=new, rows=rows, gap=gap, direction=direction, logits=logits)


def check_flip_delta(fn: Callable) -> None:
    """``fn(x, W_sq, b_sq, cur, new, scale) -> [n, d]``: a vector along ``W[:, new] - W[:, cur]`` that
    raises the probe's ``new - cur`` logit gap by ``scale * (|gap| + 2)``."""
    c = _probe_case()
    n, d = c["x"].shape
    rows, cur, new, gap, direction = c["rows"], c["cur"], c["new"], c["gap"], c["direction"]
    for scale in (1.0, 3.0):
        out = call(fn, c["x"].clone(), c["W"].clone(), c["b"].clone(), cur.clone(), new.clone(), scale,
                   what=f"(synthetic probes: n={n}, d={d}, scale={scale})")
        out = expect_tensor(out, f"flip_delta(..., scale={scale})", shape=(n, d), dims="n d", floating=True)
        out = out.detach().cpu().float()
        # The component of the delta off the direction: must be 0.
        along = (out * direction).sum(-1) / (direction**2).sum(-1)
        off = out - along[:, None] * direction
        if off.norm(dim=-1).max() > 1e-3 * (1 + out.norm(dim=-1).max()):
            raise CheckFailed(
                "the delta does not point along W_sq[:, :, new] - W_sq[:, :, cur] (per row). Only that direction "
                "moves the new-vs-current logit gap; anything else changes the residual stream for no reason.")
        change = (out * direction).sum(-1)  # how much new - cur rises
        want = scale * (gap.abs() + 2)
        if torch.allclose(change, want, rtol=1e-3, atol=1e-3):
            continue
        if torch.allclose(change, -want, rtol=1e-3, atol=1e-3):
            raise CheckFailed(
                "the sign is reversed: after your edit the probe prefers the current state even more (the gap "
                "new - cur falls by scale * (|gap| + 2)). The direction is W[:, new] - W[:, cur], not the other way.")
        norm = direction.norm(dim=-1)
        if torch.allclose(change, want * norm, rtol=1e-3, atol=1e-3):
            raise CheckFailed(
                "the gap moves by scale * (|gap| + 2) * |dir| instead of scale * (|gap| + 2): you used the unit "
                "direction dir / |dir|. A vector c * dir changes dir . x by c * |dir|^2, so divide by |dir|^2.")
        if torch.allclose(change, want / norm, rtol=1e-3, atol=1e-3) or torch.allclose(
                change, want * norm**2, rtol=1e-3, atol=1e-3):
            raise CheckFailed(
                "the gap moves by the wrong multiple of scale * (|gap| + 2), off by a power of |dir|. Take "
                "delta = dir * scale * (|gap| + 2) / |dir|^2, so that dir . delta = scale * (|gap| + 2).")
        if torch.allclose(change, scale * (gap + 2), rtol=1e-3, atol=1e-3):
            raise CheckFailed(
                f"row 1 (where the probe already prefers `new`, gap {gap[1]:.2f}) moves by scale * (gap + 2) = "
                f"{change[1]:.2f}: take the absolute value of the gap, so every edit pushes by at least 2 * scale "
                "plus the distance the probe has to travel.")
        logits_nob = torch.einsum("nd,ndk->nk", c["x"], c["W"])
        gap_nob = logits_nob[rows, cur] - logits_nob[rows, new]
        if torch.allclose(change, scale * (gap_nob.abs() + 2), rtol=1e-3, atol=1e-3):
            raise CheckFailed(
                "the gap you measured leaves out the probe's bias b_sq: the probe's logits are x @ W + b, so the "
                "gap cur - new includes b_sq[cur] - b_sq[new].")
        wrong = int((change - want).abs().argmax())
        raise CheckFailed(
            f"with scale={scale}, row {wrong} (gap cur - new = {gap[wrong]:.3f}) raises the new - cur gap by "
            f"{change[wrong]:.3f}; expected scale * (|gap| + 2) = {want[wrong]:.3f}. delta = dir * scale * (|gap| + 2) "
            "/ |dir|^2 with dir = W_sq[:, :, new] - W_sq[:, :, cur] and gap from the probe's logits x @ W_sq + b_sq.")
    after = c["logits"] + torch.einsum("nd,ndk->nk", out, c["W"])
    if not (after[rows, new] > after[rows, cur]).all():  # follows from the formula; guards the case itself
        raise CheckFailed("after the edit the probe should prefer `new` to `cur` on every row.")
    passed("flip_delta moves the probe's gap along W[new] - W[cur] by exactly scale * (|gap| + 2)")


# --- edited_log_probs -------------------------------------------------------------------------

def _model_inputs(model: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from interpbook.zoo import othello as zo

    tokens = torch.from_numpy(zo.full_games(12, seed=5).tokens())[:6, :-1]
    positions = torch.tensor([0, 30, 7, 15, 22, 3])
    g = torch.Generator().manual_seed(2)
    deltas = torch.randn(len(tokens), model.cfg.d_model, generator=g)
    deltas = deltas / deltas.norm(dim=-1, keepdim=True) * 25.0
    return tokens, positions, deltas


@torch.no_grad()
def _reference_edit(model: Any, tokens: torch.Tensor, layer: int, positions: torch.Tensor, deltas: torch.Tensor,
                    where: str = "one") -> torch.Tensor:
    """Add each row's delta at its position (``where="one"``), at every position (``"all"``) or
    from its position on (``"from"``), through the hook point *before* resid_pre."""
    name = "hook_embed" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"
    device = model.cfg.device
    rows = torch.arange(len(tokens), device=device)
    pos = positions.to(device)
    dl = deltas.to(device)

    def hook(act, hook):
        act = act.clone()
        if where == "one":
            act[rows, pos] += dl.to(act.dtype)
        elif where == "all":
            act += dl.to(act.dtype)[:, None]
        else:
            mask = (torch.arange(act.shape[1], device=device)[None] >= pos[:, None]).to(act.dtype)
            act += mask[..., None] * dl.to(act.dtype)[:, None]
        return act
    logits = model.run_with_hooks(tokens.to(device), fwd_hooks=[(name, hook)])
    return logits[rows, pos].log_softmax(-1).float().cpu()


def check_edited_log_probs(fn: Callable, model: Any) -> None:
    """``fn(model, tokens [n, 31], layer, positions [n], deltas [n, d]) -> [n, 32]``: log-probs at each
    row's position with its delta added to ``blocks.{layer}.hook_resid_pre`` at that position only."""
    tokens, positions, deltas = _model_inputs(model)
    n = len(tokens)
    name = getattr(fn, "__name__", "edited_log_probs")
    what = f"({n} games' first 31 moves, positions {positions.tolist()}, deltas of norm 25)"

    def run(layer: int, d: torch.Tensor) -> torch.Tensor:
        out = call(fn, model, tokens.clone(), layer, positions.clone(), d.clone(), what=what + f", layer {layer}")
        expect_no_leftover_hooks(model, name)
        out = expect_tensor(out, f"{name}(..., layer={layer})", shape=(n, model.cfg.d_vocab), dims="n, 32 moves",
                            floating=True)
        return out.detach().float().cpu()

    zero = run(2, torch.zeros_like(deltas))
    total = zero.exp().sum(-1)
    if not torch.allclose(total, torch.ones(n), atol=1e-3):
        if torch.allclose(zero.sum(-1), torch.ones(n), atol=1e-3):
            raise CheckFailed("the rows sum to 1: those are probabilities. Return log-probabilities (log_softmax).")
        raise CheckFailed(
            f"exp of your rows sums to {total[:3].tolist()}, not 1: return log-probabilities, "
            "logits.log_softmax(-1), not the raw logits.")
    rows = torch.arange(n)
    clean_all = model(tokens.to(model.cfg.device)).log_softmax(-1).float().cpu()
    clean = clean_all[rows, positions]
    if not torch.allclose(zero, clean, atol=1e-4):
        for shift in (1, -1):
            p = (positions + shift).clamp(0, tokens.shape[1] - 1)
            if torch.allclose(zero[1:-1], clean_all[rows, p][1:-1], atol=1e-4):
                raise CheckFailed(
                    f"with a zero delta you return the clean log-probs at position + {shift}. Read the logits at each "
                    "row's own position: logits[rows, positions] (position t predicts move t + 1).")
        expect_close(zero, clean, "with a zero delta, the log-probs", atol=1e-4, hint=(
            "A zero edit must give the clean model's log-probs at each row's position."))
    for layer in (2, 1):
        got = run(layer, deltas)
        if torch.allclose(got, zero, atol=1e-4):
            raise CheckFailed(f"at layer {layer} the deltas (norm 25) changed nothing: add them to "
                              f"f'blocks.{{layer}}.hook_resid_pre' inside model.run_with_hooks.")
        expected = _reference_edit(model, tokens, layer, positions, deltas)
        if torch.allclose(got, expected, atol=2e-4):
            continue
        if torch.allclose(got, _reference_edit(model, tokens, layer, positions, deltas, "all"), atol=2e-4):
            raise CheckFailed(
                f"at layer {layer} you added each delta at *every* position of its row. The probe read the board at "
                "one position; the earlier positions (which the prediction attends to) must stay clean. Add it at "
                "resid[rows, positions] only.")
        if torch.allclose(got, _reference_edit(model, tokens, layer, positions, deltas, "from"), atol=2e-4):
            raise CheckFailed(
                f"at layer {layer} the result matches adding the delta from each row's position onwards "
                "(resid[i, p:]). Only resid[i, p] should change.")
        if layer == 1 and torch.allclose(got, _reference_edit(model, tokens, 2, positions, deltas), atol=2e-4):
            raise CheckFailed("called with layer=1 you edited the input of block 2: use the `layer` argument in the "
                              "hook name, f'blocks.{layer}.hook_resid_pre'.")
        expect_close(got, expected, f"the edited log-probs at layer {layer}", atol=2e-4, hint=(
            "Add deltas[i] to blocks.{layer}.hook_resid_pre at [i, positions[i]] only, run the model, and return "
            "log_softmax of the logits at [i, positions[i]]."))
    passed("edited_log_probs: a zero delta is the clean model, and an edit at one position matches a reference "
           "through another hook point")


# --- follows_edit -----------------------------------------------------------------------------

def _follow_cases() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Eight moves per row (legal before -> after for moves 0..7: L->L, L->L, L->-, -->L, -->L, -->-,
    -->-, L->-), so moves 3, 4 become legal and 2, 7 illegal. Each row changes the edited
    log-probs to test one rule."""
    before = torch.tensor([1, 1, 1, 0, 0, 0, 0, 1], dtype=torch.bool)
    after = torch.tensor([1, 1, 0, 1, 1, 0, 0, 0], dtype=torch.bool)
    clean = torch.tensor([-1.0, -1.2, -1.5, -4.0, -3.5, -6.0, -5.0, -2.0])
    up = torch.tensor([0.1, 0.2, -1.0, 1.0, 1.0, 0.0, 0.0, -1.0])  # the intended movement, unchanged moves drift
    rows, why = [], []

    def row(tweak: dict[int, float], expect: bool, reason: str) -> None:
        e = clean + up
        for k, v in tweak.items():
            e = e.clone()
            e[k] = clean[k] + v
        rows.append((e, expect))
        why.append(reason)
    row({}, True, "every newly legal move up, every newly illegal move down")
    row({3: -0.3}, False, "newly legal move 3 loses log-prob")
    row({2: 0.4}, False, "newly illegal move 2 gains log-prob")
    row({7: 0.2}, False, "newly illegal move 7 gains log-prob")
    row({0: -2.0, 1: -0.5}, True, "moves legal on both boards lose log-prob (allowed: the edit makes no claim on them)")
    row({5: 1.5, 6: 0.7}, True, "moves illegal on both boards gain log-prob (allowed)")
    row({0: 1.0, 4: -0.1}, False, "newly legal move 4 loses log-prob")
    row({5: -1.0, 2: 0.05}, False, "newly illegal move 2 gains a little")
    edited = torch.stack([e for e, _ in rows])
    expect = torch.tensor([x for _, x in rows])
    n = len(rows)
    return clean.expand(n, -1).clone(), edited, before.expand(n, -1).clone(), after.expand(n, -1).clone(), expect, why


def check_follows_edit(fn: Callable) -> None:
    """``fn(clean_lp, edited_lp, legal_before, legal_after) -> bool [n]``: every move the edit makes
    legal gains log-prob and every move it makes illegal loses it."""
    clean, edited, before, after, expect, why = _follow_cases()
    n = len(expect)
    out = call(fn, clean.clone(), edited.clone(), before.clone(), after.clone(),
               what=f"({n} hand-made rows of 8 moves: moves 3, 4 become legal, 2, 7 illegal)")
    out = expect_tensor(out, "follows_edit(...)", shape=(n,), dims="n")
    if out.dtype != torch.bool:
        raise CheckFailed(f"follows_edit returned dtype {out.dtype}; return a bool tensor, one verdict per row.")
    got = out.cpu()
    if torch.equal(got, expect):
        passed("follows_edit asks exactly the moves the edit changes to move the right way")
        return
    wrong = [i for i in range(n) if got[i] != expect[i]]
    if not got[0]:
        raise CheckFailed(
            f"row 0 should be True ({why[0]}), you returned False. Newly legal moves are legal_after & ~legal_before "
            "and must *gain* log-prob (edited_lp > clean_lp); newly illegal ones, legal_before & ~legal_after, must "
            "lose it. Did you swap the two boards, or the two inequalities?")
    if all(got[i] for i in (2, 3, 7)) and not got[1] and not got[6]:
        raise CheckFailed(
            f"rows 2, 3 and 7 ({why[2]}; {why[3]}) should be False: you only checked the moves the edit makes "
            "legal. The edited board also makes moves illegal (legal_before & ~legal_after); those must lose "
            "log-prob.")
    if not got[4] or not got[5]:
        i = 4 if not got[4] else 5
        raise CheckFailed(
            f"row {i} should be True ({why[i]}). Only the moves whose legality the edit changes are scored: newly "
            "legal = legal_after & ~legal_before, newly illegal = legal_before & ~legal_after. Looks like you "
            "required every legal move of one board to gain (or every other move to lose).")
    i = wrong[0]
    raise CheckFailed(f"row {i} should be {bool(expect[i])} ({why[i]}), you returned {bool(got[i])}. Compare "
                      "edited_lp with clean_lp move by move: newly legal moves must rise, newly illegal ones fall.")


# --- random_like ------------------------------------------------------------------------------

def _random_input() -> torch.Tensor:
    g = torch.Generator().manual_seed(4)
    n, d = 64, 48
    signs = torch.tensor([1.0, -1.0]).repeat(d // 2)  # a shared direction with mixed signs
    base = torch.randn(n, d, generator=g) + 2.0 * signs  # not centred: a direction of its own
    scales = torch.logspace(-2, 2, n)
    return base / base.norm(dim=-1, keepdim=True) * scales[:, None]


def check_random_like(fn: Callable) -> None:
    """``fn(deltas [n, d], seed) -> [n, d]``: random directions, each row with the norm of the same
    row of ``deltas``, reproducible from ``seed`` alone."""
    deltas = _random_input()
    n, d = deltas.shape

    def draw(seed: int, global_seed: int) -> torch.Tensor:
        state = torch.get_rng_state()
        try:
            torch.manual_seed(global_seed)
            out = call(fn, deltas.clone(), seed, what=f"({n} rows of norms 0.01 to 100, d={d}; seed={seed})")
        finally:
            torch.set_rng_state(state)
        return expect_tensor(out, f"random_like(deltas, {seed})", shape=(n, d), dims="n d",
                             floating=True).detach().float().cpu()
    out = draw(0, 1)
    want, have = deltas.norm(dim=-1), out.norm(dim=-1)
    if not torch.allclose(have, want, rtol=1e-4, atol=1e-6):
        if abs(out.norm() - deltas.norm()) < 1e-3 * deltas.norm():
            raise CheckFailed(
                "the output has the same *overall* norm as `deltas`, but not row by row (row norms "
                f"{have[:2].tolist()} vs {want[:2].tolist()} at the start). Each position's control must be as large "
                "as that position's edit: normalise each row (norm(dim=-1, keepdim=True)).")
        raise CheckFailed(f"row norms {have[:3].tolist()}..., expected those of `deltas` {want[:3].tolist()}...: "
                          "scale each random row to the norm of the same row of deltas.")
    cos_self = torch.nn.functional.cosine_similarity(out, deltas, dim=-1)
    if cos_self.abs().mean() > 0.5:
        raise CheckFailed(f"the random rows point along `deltas` (mean |cos| {cos_self.abs().mean():.2f}): the control "
                          "must be a *random* direction with the same norm, not the edit itself.")
    unit = out / out.norm(dim=-1, keepdim=True)
    pair = (unit @ unit.T)[~torch.eye(n, dtype=torch.bool)]
    if pair.mean() > 0.3:
        raise CheckFailed(
            f"the rows point in nearly the same direction (mean cosine between rows {pair.mean():.2f}). torch.rand "
            "draws from [0, 1): every coordinate positive, so every direction leans into one corner; and one vector "
            "reused for every row is not a fresh control per position. Draw torch.randn(deltas.shape, ...).")
    again = draw(0, 2)
    if not torch.allclose(again, out):
        raise CheckFailed("two calls with seed 0 gave different outputs (the global torch seed differed between "
                          "them). Draw from `torch.Generator().manual_seed(seed)` so the control depends on the seed.")
    other = draw(1, 1)
    if torch.allclose(other, out):
        raise CheckFailed("seeds 0 and 1 gave the same directions: pass `seed` to the generator.")
    passed("random_like keeps each row's norm and draws fresh, seeded directions")
