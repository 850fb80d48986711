"""The one training loop behind every book-trained checkpoint.

Each model module (``zoo/<model>.py``) keeps a frozen ``Recipe`` (its hyper-parameters) and
the callables only it knows: how to draw a batch and compute its loss, what to evaluate and
when, which step to keep, what to write. This module holds the mechanics they share:

* :func:`training_run`: seeds, pins the thread count and the deterministic-algorithms flag for
  the run, and restores both afterwards (an importing notebook keeps its own settings);
* :func:`run_recipe`: the usual body of a module's ``train``: the recipe with its overrides,
  run inside :func:`training_run` (one deterministic thread on a CPU);
* :func:`adamw`: the optimiser;
* :func:`run_steps`: the step loop (lr schedule, forward/backward, clipping, optimiser step,
  evaluation points), timed by a :class:`Stopwatch`;
* :class:`BestStep`: best-step selection (first step with the highest score wins);
* :func:`write_checkpoint`: the checkpoint folder (via :func:`checkpoints.save_checkpoint`).

The shipped checkpoints are reproduced byte for byte by these loops, so the order of every
random draw and every floating-point expression is part of the contract: the lr of each step
comes from the recipe's own ``lr_at(step)`` expression (``base * factor``, as ``LambdaLR``
computed it, or the hand-written schedules), and the loop keeps the order seed, model init,
data draws, forward, backward, clip, step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interpbook.zoo.checkpoints import save_checkpoint


@contextmanager
def training_run(
    seed: int,
    *,
    threads: int | None = None,
    deterministic: bool | None = None,
    warn_only: bool = False,
    python_seed: int | None = None,
) -> Iterator[None]:
    """Seed torch (and Python's ``random`` if ``python_seed`` is given) and, for the duration
    of the run, set the thread count (``None``: leave it) and the deterministic-algorithms flag
    (``None``: leave it). Both are restored afterwards, also when training fails.

    One thread on a CPU: on a small shared machine two threads spend most of their time
    waiting for each other, and single-threaded reductions make runs repeatable.
    """
    threads_before = torch.get_num_threads()
    det_before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        if deterministic is not None:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.manual_seed(seed)
        if python_seed is not None:
            random.seed(python_seed)
        yield
    finally:
        torch.set_num_threads(threads_before)
        torch.use_deterministic_algorithms(det_before, warn_only=warn_before)


def run_recipe(recipe: Any, body: Callable[[str, Any, str], Any], name: str, device: str | None = None,
               **overrides: Any) -> Any:
    """``body(name, recipe_with_overrides, device)`` inside :func:`training_run`, seeded with the
    recipe's ``seed``: on the CPU (the default device) one thread and deterministic algorithms."""
    r = replace(recipe, **overrides)
    device = device or "cpu"
    with training_run(r.seed, threads=1 if device == "cpu" else None, deterministic=True):
        return body(name, r, device)


def adamw(
    params: Iterable[Tensor],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.AdamW:
    """AdamW with torch's defaults apart from what the recipe sets (eps stays 1e-8)."""
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


class Stopwatch:
    """Seconds since the step loop started (for curves, logs and metrics)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def restart(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start


def run_steps(
    optimiser: torch.optim.Optimizer,
    steps: int,
    step: Callable[[int], Any],
    *,
    lr_at: Callable[[int], float] | None = None,
    grad_clip: float | None = None,
    params: Iterable[Tensor] | None = None,
    checkpoint: Callable[[int], Any] | None = None,
    clock: Stopwatch | None = None,
) -> float:
    """Run ``steps`` optimiser steps; returns the seconds the loop took.

    Per step ``s`` (0-based): ``checkpoint(s)`` (evaluation before the update; ``s`` steps are
    done), the lr of every parameter group set to ``lr_at(s)``, gradients cleared,
    ``step(s)`` (forward and backward; it may call ``backward`` several times, e.g. per
    chunk), gradient-norm clipping to ``grad_clip`` over ``params``, the optimiser step.
    After the last step ``checkpoint(steps)`` runs once more.
    """
    clip_params = list(params) if params is not None else None
    if grad_clip is not None and clip_params is None:
        raise ValueError("grad_clip needs params")
    clock = clock or Stopwatch()
    clock.restart()
    for s in range(steps + 1):
        if checkpoint is not None:
            checkpoint(s)
        if s == steps:
            break
        if lr_at is not None:
            lr = lr_at(s)
            for group in optimiser.param_groups:
                group["lr"] = lr
        optimiser.zero_grad(set_to_none=True)
        step(s)
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(clip_params, grad_clip)
        optimiser.step()
    return clock.seconds()


class BestStep:
    """Keeps a copy of the weights at the evaluated step with the highest score.

    Scores compare with ``>``: among equal scores the earliest step stays.
    """

    def __init__(self) -> None:
        self.score: Any = None
        self.step: int | None = None
        self.state: dict[str, Tensor] | None = None
        self.info: Any = None

    def offer(self, score: Any, step: int, state: dict[str, Tensor], info: Any = None) -> bool:
        if self.step is not None and not score > self.score:
            return False
        self.score, self.step, self.info = score, step, info
        self.state = {k: v.detach().clone() for k, v in state.items()}
        return True


def write_checkpoint(
    name: str,
    state: dict[str, Tensor],
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    *,
    tokenizer_json: str | None = None,
    half: bool = False,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and, if given, ``metrics.json`` and
    ``tokenizer.json`` under the checkpoint root (``$INTERP_BOOK_CHECKPOINTS`` if set)."""
    return save_checkpoint(name, state, config, metrics, tokenizer_json=tokenizer_json, half=half)
