"""``othello-mini``: a decoder-only transformer that predicts legal moves of 6 x 6 Othello.

Trained only on move sequences of random legal games (no board, no rules): each input is the
first 31 moves of a full 32-move game as tokens (the 32 playable squares,
:mod:`interpbook.datasets.othello`), the target at each position the next move. Because the
games are uniformly random, the best prediction is "any legal move"; a model that gets the top
move legal must track the board. Games with a pass are kept (the sequence does not mark it);
games that end before the board is full are left out (about 3.5 %).

Why 6 x 6 and not 8 x 8: decision 0011 (the published model needs millions of 8 x 8 games and
a GPU; on the 2-core CPU the 6 x 6 board keeps the phenomenon at a cost the budget allows).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Int
from torch import Tensor

from interpbook.datasets import othello as game
from interpbook.zoo.native import build_native, load_native_checkpoint
from interpbook.zoo.registry import ModelSpec, register
from interpbook.zoo.train import BestStep, Stopwatch, adamw, run_recipe, run_steps, write_checkpoint

NAME = "othello-mini"
# The residual stream a linear probe reads the board from best: index 3 of `residual_streams`
# (after block 2), measured on the shipped file (the model card and the zoo test use it, with
# the probe the OthelloGPT chapter has the learner write: interpbook.solutions.othello.probing).
BEST_PROBE_LAYER = 3
TRAIN_SEED, TEST_SEED = 0, 1


@dataclass(frozen=True)
class Recipe:
    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    n_games: int = 400_000  # generated once (seeded), sampled with replacement
    steps: int = 14_000
    batch: int = 64
    lr: float = 1.5e-3
    min_lr_frac: float = 0.1
    warmup: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 1000
    eval_games: int = 500
    seed: int = 0


RECIPE = Recipe()


def model_config(r: Recipe) -> dict[str, Any]:
    return {
        "model_name": NAME,
        "n_layers": r.n_layers,
        "d_model": r.d_model,
        "n_heads": r.n_heads,
        "d_head": r.d_model // r.n_heads,
        "d_mlp": r.d_mlp,
        "d_vocab": game.N_MOVES,
        "n_ctx": game.N_MOVES - 1,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "default_prepend_bos": False,
        "seed": r.seed,
    }


def full_games(n: int, seed: int) -> game.Games:
    """Random games that fill the board (all 32 moves), from ``n`` drawn."""
    g = game.random_games(n, seed=seed)
    keep = g.length == game.N_MOVES
    return game.Games(g.moves[keep], g.players[keep], g.boards[keep], g.length[keep])


def legal_targets(g: game.Games) -> Bool[Tensor, "n 31 32"]:
    """At each input position t (after move t), which tokens are legal for the next mover."""
    n = len(g.moves)
    boards = g.boards[:, :-1].reshape(-1, game.N_SQUARES)
    mover = g.players[:, 1:].reshape(-1)
    legal_sq = game.legal_moves(boards, mover)  # [n*31, 36]
    return torch.from_numpy(legal_sq[:, game.SQUARE_OF_TOKEN].reshape(n, game.N_MOVES - 1, game.N_MOVES))


@torch.no_grad()
def legal_top1(model: Any, tokens: Int[Tensor, "n 32"], legal: Bool[Tensor, "n 31 32"],
               chunk: int = 256) -> float:
    """Fraction of positions where the model's top move is legal."""
    hits = []
    for i in range(0, len(tokens), chunk):
        logits = model(tokens[i : i + chunk, :-1].to(model.cfg.device))
        top = logits.argmax(-1).cpu()
        hits.append(legal[i : i + chunk].gather(-1, top[..., None])[..., 0])
    return torch.cat(hits).float().mean().item()


def test_set(n: int = 2000) -> tuple[game.Games, Tensor, Tensor]:
    """Held-out games (seed ``TEST_SEED``): the games, their tokens and legal-move targets."""
    g = full_games(n, TEST_SEED)
    return g, torch.from_numpy(g.tokens()), legal_targets(g)


def train(name: str = NAME, device: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Train ``othello-mini`` deterministically and save it; returns the metrics."""
    return run_recipe(RECIPE, _train, name, device, **overrides)


def _train(name: str, r: Recipe, device: str) -> dict[str, Any]:
    clock = Stopwatch()
    games = torch.from_numpy(full_games(r.n_games, TRAIN_SEED).tokens())
    gen_seconds = clock.seconds()
    _, eval_tokens, eval_legal = test_set(r.eval_games)
    config = model_config(r)
    model = build_native(config, device=device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(params, lr=r.lr, betas=(0.9, 0.98), weight_decay=r.weight_decay)
    g = torch.Generator().manual_seed(r.seed + 1)
    best = BestStep()
    history: list[dict[str, Any]] = []
    recent: list[float] = []

    def checkpoint(step: int) -> None:
        if step % r.eval_every and step != r.steps:
            return
        model.eval()
        acc = legal_top1(model, eval_tokens, eval_legal)
        model.train()
        row = {"step": step, "seconds": round(clock.seconds(), 1),
               "train_loss": round(sum(recent) / len(recent), 4) if recent else None,
               "legal_top1": round(acc, 4)}
        recent.clear()
        history.append(row)
        print(json.dumps(row), flush=True)
        if step > 0:
            best.offer(acc, step, model.state_dict(), row)

    def train_step(step: int) -> None:
        idx = torch.randint(len(games), (r.batch,), generator=g)
        x = games[idx].to(device)
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        loss.backward()
        recent.append(loss.item())

    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / r.warmup)
        return r.lr * warm * (r.min_lr_frac + (1 - r.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * step / r.steps)))

    clock.restart()
    train_seconds = run_steps(opt, r.steps, train_step, lr_at=lr_at, grad_clip=r.grad_clip, params=params,
                              checkpoint=checkpoint, clock=clock)
    assert best.state is not None
    model.load_state_dict(best.state)
    model.eval()
    _, test_tokens, test_legal = test_set()
    metrics = {
        "recipe": asdict(r),
        "device": device,
        "board": f"{game.SIZE}x{game.SIZE}",
        "games_seconds": round(gen_seconds, 1),
        "train_games": int(len(games)),
        "train_seconds": round(train_seconds, 1),
        "selected_step": best.step,
        "legal_top1_test": round(legal_top1(model, test_tokens, test_legal), 4),
        "history": history,
    }
    write_checkpoint(name, best.state, config, metrics, half=True)
    return metrics


def board_states(g: game.Games) -> np.ndarray:
    """``[n, 31, 36]`` the board after each input move, relative to the player to move next:
    0 empty, 1 mine, 2 theirs (the probing targets)."""
    mover = g.players[:, 1:, None]
    rel = g.boards[:, :-1] * mover
    return np.where(rel == 0, 0, np.where(rel == 1, 1, 2)).astype(np.int64)




def colour_states(g: game.Games) -> np.ndarray:
    """``[n, 31, 36]`` the board after each input move in absolute colours: 0 empty, 1 black,
    2 white (the encoding a probe for the literal board would use)."""
    b = g.boards[:, :-1]
    return np.where(b == 0, 0, np.where(b == game.BLACK, 1, 2)).astype(np.int64)


@torch.no_grad()
def residual_streams(model: Any, tokens: Int[Tensor, "n 32"], chunk: int = 256) -> Tensor:
    """``[n_layers + 1, n, 31, d_model]``: the residual stream before each block and after the
    last, at every input position."""
    names = [f"blocks.{i}.hook_resid_pre" for i in range(model.cfg.n_layers)]
    names.append(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post")
    out = []
    for i in range(0, len(tokens), chunk):
        _, cache = model.run_with_cache(tokens[i : i + chunk, :-1].to(model.cfg.device),
                                        names_filter=lambda n: n in names)
        out.append(torch.stack([cache[n].float().cpu() for n in names]))
    return torch.cat(out, dim=1)


register(
    ModelSpec(
        name=NAME,
        description="4-layer transformer that predicts legal moves of 6x6 Othello from move sequences",
        load_default=lambda device: load_native_checkpoint(NAME, device=device),
        trainer="interpbook.zoo.othello:train",
    )
)
