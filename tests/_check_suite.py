"""The three tests every section's checks get, written once: each check fails on a stub, passes
on the exported solution (printing its ✔ line), and every check of the module has a solution.

In a test module: ``test_check_fails_on_the_stub, test_check_passes_on_the_solution,
test_every_check_is_tested = check_suite(checks, SOLUTIONS)`` (pytest collects them by name).
The wrong answers each check must reject stay in the section's own test file."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import ModuleType

import pytest
import torch

from interpbook.checks import CheckFailed


def _stub(*args, **kwargs):
    raise NotImplementedError


def check_suite(checks: ModuleType, solutions: dict[str, Callable], no_grad: bool = False):
    """``solutions`` maps a function name to its exported solution (``check_<name>`` in
    ``checks``); ``no_grad`` runs the solutions with gradients off, as the page does."""
    names = sorted(solutions)

    @pytest.mark.parametrize("name", names)
    def test_check_fails_on_the_stub(name):
        with pytest.raises(CheckFailed, match="NotImplementedError"):
            getattr(checks, f"check_{name}")(_stub)

    @pytest.mark.parametrize("name", names)
    def test_check_passes_on_the_solution(name, capsys):
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            getattr(checks, f"check_{name}")(solutions[name])
        assert "✔" in capsys.readouterr().out

    def test_every_check_is_tested():
        assert {f"check_{n}" for n in solutions} == set(checks.__all__)

    return test_check_fails_on_the_stub, test_check_passes_on_the_solution, test_every_check_is_tested
