"""Checks for section 2, "Probing for the board" (book/chapters/othello/02-probing.md).

No check runs the model. ``relative_states`` gets engine positions from
:func:`interpbook.datasets.othello.random_games` (with passes, so that the side to move is not
always the opposite of the last mover) and the starting board, whose answer is written out by
hand. ``majority_baseline`` gets hand-made states whose per-square majority, global majority and
test-split majority are three different predictions with known accuracies. ``train_board_probe``
gets synthetic activations with planted linear structure: each square's state is a one-hot code
sent through a random linear map, with noise, features on different scales and an offset, and a
fill level that varies from position to position like a game's; a probe trained on the class
cross-entropy reads it almost perfectly and with confident, calibrated logits.
``accuracy_by_square`` and ``occupied_accuracy`` get a hand-built probe whose predictions are
known by construction (one-hot activations through an identity map, and biases that decide some
squares), and states that agree with them on a known number of positions per square.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from interpbook.checks import CheckFailed, call, expect_float, expect_tensor, passed
from interpbook.datasets import othello as game

__all__ = [
    "check_relative_states",
    "check_majority_baseline",
    "check_train_board_probe",
    "check_accuracy_by_square",
    "check_occupied_accuracy",
]

N_SQ = game.N_SQUARES


# --- relative_states --------------------------------------------------------------------------

def _engine_positions() -> tuple[torch.Tensor, torch.Tensor]:
    """Every position of 30 random games (seed 11) with the colour that moves next, passes
    included: [n, 36] int8 boards and [n] int8 players."""
    g = game.random_games(30, seed=11)
    boards, nxt = g.boards[:, :-1], g.players[:, 1:]
    keep = nxt != 0  # the game is not over
    return torch.from_numpy(boards[keep]), torch.from_numpy(nxt[keep])


def check_relative_states(fn: Callable) -> None:
    """``fn(boards, next_player)``: 0 empty, 1 the next mover's disc, 2 the other's, as int64."""
    # The starting board: c3 (14) and d4 (21) are white, d3 (15) and c4 (20) black.
    start = torch.from_numpy(game.initial_boards(2))
    to_move = torch.tensor([game.BLACK, game.WHITE], dtype=torch.int8)
    out = call(fn, start.clone(), to_move.clone(), what="(the starting board twice, black then white to move)")
    out = expect_tensor(out, "the states", shape=(2, N_SQ), dims="n 36")
    if out.dtype != torch.int64:
        raise CheckFailed(f"the states have dtype {out.dtype}; return int64 (torch.long) class indices, the dtype "
                          "F.cross_entropy expects for its targets.")
    out = out.cpu()
    if (out < 0).any():
        raise CheckFailed(f"the states contain {out.min().item()}: looks like you returned boards * next_player "
                          "(+1 mine, -1 theirs). They are class indices for the cross-entropy: 0 empty, 1 mine, "
                          "2 theirs. Map -1 to 2.")
    want = torch.zeros(2, N_SQ, dtype=torch.long)
    want[0, [15, 20]], want[0, [14, 21]] = 1, 2  # black to move: the black discs are mine
    want[1, [14, 21]], want[1, [15, 20]] = 1, 2  # white to move: the white discs are mine
    if torch.equal(out[0], want[1]) and torch.equal(out[1], want[0]):
        raise CheckFailed("on the starting board with black to move you called the white discs (c3 and d4) 'mine': "
                          "mine and theirs are swapped, as if relative to the player who just moved. 'Mine' (1) "
                          "is a disc of `next_player`, the player about to move.")
    if torch.equal(out[0], want[0]) and torch.equal(out[1], want[0]):
        raise CheckFailed("you gave the same states for the starting board with black and with white to move: "
                          "looks like you ignored `next_player` and encoded colours (1 black, 2 white). Multiply "
                          "the board by next_player first.")
    if not torch.equal(out, want):
        raise CheckFailed(f"on the starting board (black to move) you returned, for squares 14, 15, 20, 21: "
                          f"{out[0, [14, 15, 20, 21]].tolist()}; expected [2, 1, 1, 2] (d3 and c4 are black), and "
                          "0 on every other square.")
    boards, nxt = _engine_positions()
    out = call(fn, boards.clone(), nxt.clone(), what=f"({len(boards)} positions of 30 random games, with passes)")
    out = expect_tensor(out, "the states", shape=(len(boards), N_SQ), dims="n 36").cpu().long()
    table = torch.tensor([2, 0, 1])  # indexed by (board * player) + 1: theirs, empty, mine
    want = table[(boards.long() * nxt.long()[:, None]) + 1]
    if not torch.equal(out, want):
        bad = (out != want).any(1).nonzero().flatten()
        i = int(bad[0])
        raise CheckFailed(f"{len(bad)} of {len(boards)} engine positions are wrong; the first (with "
                          f"{'black' if nxt[i] == game.BLACK else 'white'} to move) differs on squares "
                          f"{(out[i] != want[i]).nonzero().flatten().tolist()[:8]}. Use `next_player` as given: "
                          "after a pass the same colour moves twice.")
    passed("relative_states encodes every engine position relative to the player about to move")


# --- majority_baseline ------------------------------------------------------------------------

def _majority_data() -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Training states whose per-square majority is s % 3 but whose most common state overall is
    0; test states whose own majority differs on squares 0-11. Returns the known accuracies."""
    k, m = 40, 30
    major = torch.arange(N_SQ) % 3  # the per-square majority in training
    train = torch.zeros(k, N_SQ, dtype=torch.long)
    for s in range(N_SQ):
        c = int(major[s])
        if c == 0:
            col = [0] * 32 + [1] * 4 + [2] * 4
        else:
            col = [c] * 18 + [0] * 15 + [3 - c] * 7  # c is the majority; 0 is common everywhere
        train[:, s] = torch.tensor(col)[torch.randperm(k, generator=torch.Generator().manual_seed(s))]
    test = torch.zeros(m, N_SQ, dtype=torch.long)
    n_right = torch.zeros(N_SQ, dtype=torch.long)
    for s in range(N_SQ):
        c = int(major[s])
        # squares 0-11: the training majority is right on 10 of 30 test positions, another class on 20
        n = 10 if s < 12 else 12 + s % 7
        other = (c + 1) % 3
        test[:, s] = torch.tensor([c] * n + [other] * (m - n))[
            torch.randperm(m, generator=torch.Generator().manual_seed(100 + s))]
        n_right[s] = n
    known = {
        "right": n_right.sum().item() / (m * N_SQ),
        "global": (test == 0).float().mean().item(),
        "test": (test == F.one_hot(test, 3).sum(0).argmax(-1)).float().mean().item(),
    }
    return train, test, known


def check_majority_baseline(fn: Callable) -> None:
    """``fn(train_states, test_states)``: accuracy on test of each square's majority training state."""
    train, test, known = _majority_data()
    out = call(fn, train.clone(), test.clone(), what="(hand-made states: train [40, 36], test [30, 36])")
    got = expect_float(out, "the baseline accuracy")
    if abs(got - known["right"]) < 1e-6:
        passed(f"majority_baseline predicts each square's own majority (accuracy {got:.3f})")
        return
    if abs(got - known["global"]) < 1e-6:
        raise CheckFailed(f"got {got:.4f}, the accuracy of predicting one class (0, the most common overall) on "
                          f"every square; expected {known['right']:.4f}. The majority is per square: count each "
                          "square's states over the training positions, and take the argmax for each square.")
    if abs(got - known["test"]) < 1e-6:
        raise CheckFailed(f"got {got:.4f}: the majorities were taken from `test_states`. A baseline must be fitted "
                          f"on the training positions only; expected {known['right']:.4f}.")
    if abs(got - 100 * known["right"]) < 1e-4:
        raise CheckFailed(f"got {got:.2f}: a percentage. Return a fraction between 0 and 1.")
    raise CheckFailed(f"got {got:.4f}; expected {known['right']:.4f} (on these states each square's majority "
                      "training state is square % 3).")


# --- train_board_probe ------------------------------------------------------------------------

D_SYN = 96


def _planted_board(k: int, g: torch.Generator, mix: torch.Tensor, scales: torch.Tensor, offset: torch.Tensor):
    """States with a fill level that varies by position (early and late in a game), each one-hot
    code mixed into D_SYN dimensions by ``mix``, plus noise; features rescaled and offset."""
    fill = torch.rand(k, 1, generator=g)
    occupied = torch.rand(k, N_SQ, generator=g) < fill
    first = torch.rand(k, N_SQ, generator=g) < 0.5
    states = torch.where(occupied, torch.where(first, 1, 2), 0)
    onehot = F.one_hot(states, 3).float().reshape(k, -1)
    acts = (onehot @ mix + 0.3 * torch.randn(k, D_SYN, generator=g)) * scales + offset
    return acts, states


def _synthetic() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(3 * N_SQ, D_SYN, generator=g) / 3
    scales = torch.linspace(0.5, 4.0, D_SYN)  # like a residual stream: dimensions on different scales
    offset = 5.0 * torch.randn(D_SYN, generator=g)  # and far from the origin
    X, S = _planted_board(2000, g, mix, scales, offset)
    Xt, St = _planted_board(2000, g, mix, scales, offset)
    return X, S, Xt, St


def _logits(W: torch.Tensor, b: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    return torch.einsum("md,dsk->msk", X, W) + b


def _train(fn: Callable, X: torch.Tensor, S: torch.Tensor, seed: int, global_seed: int, steps: int = 60):
    state = torch.get_rng_state()
    try:
        torch.manual_seed(global_seed)  # the probe must depend on `seed`, not on the global RNG
        with torch.no_grad():  # the page switches gradients off globally
            out = call(fn, X.clone(), S.clone(), steps=steps, lr=0.1, seed=seed, what=(
                f"(2,000 synthetic positions, d = 96, states [2000, 36] int64; steps={steps}, lr=0.1, seed={seed}, "
                "called with gradients globally disabled, as on the page)"))
    except CheckFailed as e:
        if "grad" in str(e):
            raise CheckFailed(f"{e}\nThe page runs with torch.set_grad_enabled(False): train inside "
                              "`with torch.enable_grad():`, with W and b created with requires_grad.") from None
        raise
    finally:
        torch.set_rng_state(state)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"train_board_probe should return a tuple (W, b); got {type(out).__name__}.")
    W, b = out
    W = expect_tensor(W, "W", shape=(X.shape[1], N_SQ, 3), dims="d 36 3", floating=True).detach().cpu().float()
    b = expect_tensor(b, "b", shape=(N_SQ, 3), dims="36 3", floating=True).detach().cpu().float()
    if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
        raise CheckFailed("W or b is not finite: the training diverged.")
    return W, b


def check_train_board_probe(fn: Callable) -> None:
    """``fn(acts, states, steps, lr, seed)`` returns ``(W [d, 36, 3], b [36, 3])``: a probe trained
    on the per-square class cross-entropy, for raw activations, reproducible from ``seed``."""
    X, S, Xt, St = _synthetic()
    W, b = _train(fn, X, S, seed=0, global_seed=1)
    logits = _logits(W, b, Xt)
    acc = (logits.argmax(-1) == St).float().mean().item()
    if acc < 0.95:
        # The same numbers read as [d, 3, 36] (a reshape where a permute was needed)?
        Wr, br = W.reshape(W.shape[0], 3, N_SQ).transpose(1, 2), b.reshape(3, N_SQ).T
        if (_logits(Wr, br, Xt).argmax(-1) == St).float().mean() > 0.9:
            raise CheckFailed(
                f"held-out accuracy {acc:.1%}; but read as [d, 3, 36] (classes before squares), your W and b reach "
                "over 90%. You trained with the logits laid out [m, 3, 36] and then reshaped W to [d, 36, 3], which "
                "scrambles squares and classes. Keep W as [d, 36, 3] and move the class axis of the *logits* with "
                "einsum (\"m d, d s k -> m k s\") or .permute(0, 2, 1), never with reshape or view.")
        Zt = (Xt - X.mean(0)) / (X.std(0) + 1e-6)
        if (_logits(W, b, Zt).argmax(-1) == St).float().mean() > 0.9:
            raise CheckFailed(
                f"held-out accuracy {acc:.1%} on raw activations, but over 90% once they are standardised with the "
                "training mean and standard deviation: you returned the probe of the standardised activations. "
                "Fold them back: W / sigma[:, None, None], and b - einsum(mu / sigma, W, \"d, d s k -> s k\").")
        raise CheckFailed(
            f"held-out accuracy {acc:.1%}; a linear probe reads these planted boards with more than 95%. Check the "
            "loss: F.cross_entropy with logits [m, 3, 36] (classes on axis 1) and states [m, 36]; standardise the "
            "activations (they have different scales and an offset), and return W [d, 36, 3] and b [36, 3] such "
            "that einsum(acts, W, \"m d, d s k -> m s k\") + b are the logits.")
    ce = F.cross_entropy(logits.transpose(1, 2), St).item()
    if ce > 0.05:
        raise CheckFailed(
            f"the probe's argmax is right ({acc:.1%}), but its logits are not class log-probabilities: held-out "
            f"cross-entropy over the 3 classes {ce:.3f}, where a probe trained on it gets under 0.02 here. Looks "
            "like the softmax ran over the 36 squares instead of the 3 classes: with logits [m, 36, 3], "
            "F.cross_entropy treats axis 1 (the squares) as the classes (with one-hot targets it does not "
            "complain). Put the classes on axis 1: logits [m, 3, 36], targets the class indices [m, 36].")
    # Reproducibility: a few steps are enough to see whether the start depends on `seed` alone.
    W1, b1 = _train(fn, X, S, seed=0, global_seed=1, steps=5)
    W2, b2 = _train(fn, X, S, seed=0, global_seed=2, steps=5)
    if not (torch.allclose(W1, W2, atol=1e-5) and torch.allclose(b1, b2, atol=1e-5)):
        raise CheckFailed("two calls with seed=0 gave different probes (only the global torch seed differed): "
                          "initialise W with `torch.randn(..., generator=torch.Generator().manual_seed(seed))` so "
                          "that the probe depends on `seed` alone.")
    W3, _ = _train(fn, X, S, seed=1, global_seed=1, steps=5)
    if torch.allclose(W1, W3):
        raise CheckFailed("seed=0 and seed=1 gave the same probe: draw the initial W from a generator seeded with "
                          "`seed`.")
    passed(f"train_board_probe reads planted boards (held-out accuracy {acc:.1%}, cross-entropy {ce:.3f}), "
           "on raw activations, reproducibly")


# --- accuracy_by_square and occupied_accuracy -------------------------------------------------

def _hand_probe(pred: torch.Tensor, decided: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Activations, W and b whose argmax is ``pred`` ([m, 36]) by construction: acts are the
    one-hot codes of ``pred`` (times 4) and W the identity, except on the squares in
    ``decided``, where W is 0 and the bias alone picks the class (0 would be the argmax without
    it). Small random biases elsewhere do not change the argmax."""
    m = pred.shape[0]
    acts = 4.0 * F.one_hot(pred, 3).float().reshape(m, -1)  # [m, 108]
    W = torch.eye(3 * N_SQ).reshape(3 * N_SQ, N_SQ, 3).clone()
    b = 0.5 * torch.rand(N_SQ, 3, generator=torch.Generator().manual_seed(3))
    for s, c in decided.items():
        W[:, s] = 0
        b[s] = 0
        b[s, c] = 2.0
    return acts, W, b


def check_accuracy_by_square(fn: Callable) -> None:
    """``fn(W, b, acts, states)`` is ``[36]``: per square, the fraction of positions predicted right."""
    m = N_SQ  # as many positions as squares: averaging over the wrong axis still has the right shape
    g = torch.Generator().manual_seed(4)
    decided = {s: 1 + s % 2 for s in range(30, N_SQ)}  # the bias alone decides these (class 1 or 2)
    pred = torch.randint(0, 3, (m, N_SQ), generator=g)
    for s, c in decided.items():
        pred[:, s] = c
    acts, W, b = _hand_probe(pred, decided)
    # square s is right on its first s + 1 positions, wrong (another class) on the rest
    states = pred.clone()
    wrong = torch.arange(m)[:, None] > torch.arange(N_SQ)[None, :]
    states[wrong] = (pred[wrong] + 1) % 3
    want = (torch.arange(N_SQ) + 1) / m
    out = call(fn, W.clone(), b.clone(), acts.clone(), states.clone(),
               what="(a hand-built probe: W [108, 36, 3], b [36, 3], acts [36, 108], states [36, 36])")
    out = expect_tensor(out, "the accuracy by square", shape=(N_SQ,), dims="36", floating=True).detach().cpu()
    if torch.allclose(out, want, atol=1e-5):
        m2 = 50  # a second call where the two axes have different lengths
        pred2 = torch.randint(0, 3, (m2, N_SQ), generator=g)
        acts2, W2, b2 = _hand_probe(pred2, {})
        out2 = call(fn, W2, b2, acts2, pred2.clone(), what="(50 positions, all predicted right)")
        out2 = expect_tensor(out2, "the accuracy by square (50 positions)", shape=(N_SQ,), dims="36")
        if not torch.allclose(out2.detach().cpu().float(), torch.ones(N_SQ)):
            raise CheckFailed("with a probe right on every square of 50 positions, the accuracy by square should be 1 "
                              "everywhere.")
        passed("accuracy_by_square averages each square over the positions")
        return
    by_position = (N_SQ - torch.arange(m)) / N_SQ
    if torch.allclose(out, by_position, atol=1e-5):
        raise CheckFailed("you returned one accuracy per *position* (averaged over the squares), not per square. "
                          "The predictions are [positions, squares]: average over axis 0, the positions.")
    if torch.allclose(out[:30], want[:30], atol=1e-5):
        raise CheckFailed(f"squares 0-29 are right, but squares 30-35 are {out[30:].tolist()} (expected "
                          f"{[round(v, 4) for v in want[30:].tolist()]}). On those squares W is zero and only the "
                          "bias b decides: did you leave b out of the logits?")
    raise CheckFailed(f"the accuracy by square is wrong: square 0 should be {want[0]:.4f} (right on 1 position of "
                      f"{m}) and square 35 {want[-1]:.4f}; got {out[0].item():.4f} and {out[-1].item():.4f}. The "
                      "prediction is the argmax over the 3 classes (the last axis) of einsum(acts, W) + b.")


def check_occupied_accuracy(fn: Callable) -> None:
    """``fn(W, b, acts, states)``: accuracy over the squares whose true state is not empty."""
    m = 40
    g = torch.Generator().manual_seed(6)
    pred = torch.randint(0, 3, (m, N_SQ), generator=g)
    decided = {s: 2 for s in range(32, N_SQ)}
    for s, c in decided.items():
        pred[:, s] = c
    acts, W, b = _hand_probe(pred, decided)
    # Make errors of every kind with known counts: where a draw is below 0.2 the state differs
    # from the prediction by one class (so that empty <-> occupied mistakes happen both ways).
    flip = torch.rand(m, N_SQ, generator=g) < 0.2
    states = torch.where(flip, (pred + 1 + (torch.rand(m, N_SQ, generator=g) < 0.5).long()) % 3, pred)
    right = pred == states
    occupied, pred_occupied = states != 0, pred != 0
    want = right[occupied].float().mean().item()
    overall = right.float().mean().item()
    by_pred = right[pred_occupied].float().mean().item()
    out = call(fn, W.clone(), b.clone(), acts.clone(), states.clone(),
               what="(a hand-built probe: W [108, 36, 3], b [36, 3], acts [40, 108], states [40, 36])")
    got = expect_float(out, "the occupied accuracy")
    if abs(got - want) < 1e-5:
        passed(f"occupied_accuracy counts only the squares that hold a disc ({got:.3f}; all squares: {overall:.3f})")
        return
    if abs(got - overall) < 1e-5:
        raise CheckFailed(f"got {got:.4f}, the accuracy over all squares, empties included; expected {want:.4f}. "
                          "Keep only the (position, square) pairs whose true state is not 0.")
    if abs(got - by_pred) < 1e-5:
        raise CheckFailed(f"got {got:.4f}: you kept the squares the *probe* calls occupied. The mask comes from the "
                          f"true states (`states != 0`); expected {want:.4f}. Otherwise a disc the probe calls "
                          "empty is never counted as a mistake.")
    empty_acc = right[~occupied].float().mean().item()
    if abs(got - empty_acc) < 1e-5:
        raise CheckFailed(f"got {got:.4f}, the accuracy on the *empty* squares; expected {want:.4f} (states != 0).")
    raise CheckFailed(f"got {got:.4f}; expected {want:.4f}, the fraction of (position, square) pairs with states != 0 "
                      "where the argmax over the 3 classes of einsum(acts, W) + b equals the state.")
