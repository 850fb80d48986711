"""The shared training loop (``interpbook.zoo.train``) and the per-model recipes.

The full retrains are too slow for the test suite; what is cheap to check is the contract the
byte-for-byte reproduction rests on: settings restored, the loop's order of calls, the exact
lr floats of each schedule, and that every registered trainer resolves.
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from interpbook.datasets import ioi as ioi_data
from interpbook.zoo import brackets as zb
from interpbook.zoo import ioi
from interpbook.zoo import modular_addition as ma
from interpbook.zoo.registry import model_names, spec
from interpbook.zoo.train import BestStep, adamw, run_steps, training_run


def test_training_run_restores_threads_and_determinism_even_on_error():
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        with training_run(0, threads=1, deterministic=not det, warn_only=True):
            assert torch.get_num_threads() == 1
            assert torch.are_deterministic_algorithms_enabled() == (not det)
            raise RuntimeError("boom")
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det
    assert torch.is_deterministic_algorithms_warn_only_enabled() == warn


def test_training_run_seeds_torch_and_python_random():
    import random

    with training_run(5, python_seed=7):
        a = torch.rand(3), random.random()
    with training_run(5, python_seed=7):
        b = torch.rand(3), random.random()
    assert torch.equal(a[0], b[0]) and a[1] == b[1]


def test_run_steps_order_lr_and_clipping():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = adamw([w], lr=1.0, weight_decay=0.0)
    calls: list[tuple[str, int, float]] = []

    def step(s: int) -> None:
        assert w.grad is None  # cleared before every step
        calls.append(("step", s, opt.param_groups[0]["lr"]))
        (w * 10).sum().backward()

    def checkpoint(done: int) -> None:
        calls.append(("eval", done, opt.param_groups[0]["lr"]))

    def lr_at(s: int) -> float:
        return 0.1 * (s + 1)

    run_steps(opt, 3, step, lr_at=lr_at, grad_clip=1.0, params=[w], checkpoint=checkpoint)
    assert [(k, s) for k, s, _ in calls] == [
        ("eval", 0), ("step", 0), ("eval", 1), ("step", 1), ("eval", 2), ("step", 2), ("eval", 3)
    ]
    assert [lr for k, _, lr in calls if k == "step"] == [lr_at(0), lr_at(1), lr_at(2)]
    assert w.grad is not None and float(w.grad.norm()) == pytest.approx(1.0, rel=1e-5)


def test_best_step_keeps_the_first_highest_score():
    best = BestStep()
    x = torch.zeros(1)
    for step, score in [(1, 0.5), (2, 0.7), (3, 0.7), (4, 0.1)]:
        x += 1
        best.offer(score, step, {"x": x})
    assert best.step == 2 and float(best.state["x"]) == 2.0  # a copy, not the live tensor


def test_ioi_schedule_is_bitwise_the_lambda_lr_one():
    r = ioi.VARIANTS[ioi.SHIPPED_VARIANT]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=r.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * max(0.05, 1 - s / r.steps))
    for s in range(r.steps):
        assert r.lr_at(s) == opt.param_groups[0]["lr"], s
        opt.step()
        sched.step()


def test_modular_addition_schedule_is_bitwise_the_lambda_lr_one():
    r = ma.RECIPE
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=r.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
    for s in range(40):
        assert r.lr_at(s) == opt.param_groups[0]["lr"], s
        opt.step()
        sched.step()


def test_brackets_schedule_warms_up_then_decays_to_the_floor():
    r = zb.RECIPE
    assert r.lr_at(0) == r.lr / r.warmup_steps
    assert r.lr_at(r.warmup_steps) == pytest.approx(r.lr)
    assert r.lr_at(r.steps) == pytest.approx(r.lr * r.min_lr_fraction)
    mid = r.warmup_steps + (r.steps - r.warmup_steps) // 2
    expected = r.min_lr_fraction + (1 - r.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * 0.5))
    assert r.lr_at(mid) == pytest.approx(r.lr * expected)


def test_ioi_variants_are_recipes_and_the_shipped_one_is_among_them():
    assert len(ioi.VARIANTS) == 9
    assert all(name == r.name for name, r in ioi.VARIANTS.items())
    shipped = ioi.VARIANTS[ioi.SHIPPED_VARIANT]
    assert shipped.model_config()["n_layers"] == 4 and shipped.varied_actions


def test_ioi_reexports_the_dataset_module():
    from interpbook.datasets import ioi as ds

    assert ioi_data.IOIDataset is ds.IOIDataset and ioi_data.make_ioi_dataset is ds.make_ioi_dataset
    assert ioi_data.VOCAB == ds.VOCAB


@pytest.mark.parametrize("name", model_names())
def test_every_registered_trainer_resolves(name):
    trainer = spec(name).trainer
    assert trainer is not None
    module, _, func = trainer.partition(":")
    assert callable(getattr(importlib.import_module(module), func or "train"))
