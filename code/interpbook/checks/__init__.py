"""Exercise checks, one module per section: ``interpbook.checks.<chapter>.<section>`` holds
``check_<function>`` for every function the learner writes on that page.

Each check calls the learner's function (always through :func:`call`, so every failure reads
the same) on inputs whose answer is known by construction, and raises :class:`CheckFailed` with
a message that says what was expected, what came back, and where to look."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch


class CheckFailed(AssertionError):
    """An exercise's check did not pass. The message says why."""


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {list(value.shape)}"
    if hasattr(value, "cfg"):
        return "the model"
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def call(fn: Callable, *args, what: str = "", **kwargs) -> Any:
    """Call the learner's ``fn``. An unfinished stub, or an error inside the learner's code,
    becomes a :class:`CheckFailed` that says so and shows the inputs it was called with
    (``what`` describes them further)."""
    name = getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(
            f"`{name}` still raises NotImplementedError: fill in the lines marked "
            "`# YOUR CODE HERE`, re-run that cell, then run this check again."
        ) from None
    except CheckFailed:
        raise
    except Exception as e:  # the learner's bug: report it with the input that triggered it
        shown = ", ".join([_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()])
        raise CheckFailed(
            f"`{name}` raised {type(e).__name__}: {e} when called with ({shown})"
            f"{' ' + what if what else ''}. Make it work for any input of these shapes, using the "
            "shapes of its inputs rather than sizes of the model."
        ) from e


def expect_tensor(value: Any, what: str, shape: Sequence[int] | None = None,
                  dims: str | None = None, dtype: torch.dtype | None = None,
                  floating: bool = False) -> torch.Tensor:
    """``value`` must be a tensor of ``shape`` (``dims`` names the axes in messages)."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what} should be a torch.Tensor, got {type(value).__name__}.")
    if shape is not None and tuple(value.shape) != tuple(shape):
        named = f" = [{dims}]" if dims else ""
        raise CheckFailed(
            f"{what} has shape {list(value.shape)}; expected {list(shape)}{named}."
        )
    if dtype is not None and value.dtype != dtype:
        raise CheckFailed(f"{what} has dtype {value.dtype}; expected {dtype}.")
    if floating and not value.is_floating_point():
        raise CheckFailed(f"{what} has dtype {value.dtype}; expected a floating-point tensor.")
    return value


def expect_float(value: Any, what: str) -> float:
    """A Python number or a one-element tensor, as a float; anything else (a bool, a string, a
    tensor of several numbers) fails with a message naming ``what``."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise CheckFailed(f"{what} should be one number; got a tensor of shape {list(value.shape)}.")
        return float(value.detach().float().cpu().item())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise CheckFailed(f"{what} should be one number (a float or a one-element tensor); got "
                      f"{type(value).__name__}.")


def expect_close(actual: torch.Tensor, expected: torch.Tensor, what: str, atol: float = 1e-4,
                 rtol: float = 1e-3, hint: str = "") -> None:
    expected = expected.to(actual.device, actual.dtype)
    if not torch.allclose(actual, expected, atol=atol, rtol=rtol):
        diff = (actual - expected).abs()
        idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape)) if diff.ndim else ()
        raise CheckFailed(
            f"{what} differs from the reference: largest difference {diff.max().item():.4g} at index "
            f"{list(idx)} (yours {actual[idx].item():.4g}, expected {expected[idx].item():.4g})."
            + (f" {hint}" if hint else "")
        )


def leftover_hooks(model: Any) -> list[str]:
    """Names of the model's hook points that still have a (non-permanent) forward or backward
    hook attached."""
    out = []
    for name, hp in model.hook_dict.items():
        if hasattr(hp, "fwd_hooks"):  # TransformerLens keeps its own list of handles
            handles = list(hp.fwd_hooks) + list(getattr(hp, "bwd_hooks", []))
            if any(not getattr(h, "is_permanent", False) for h in handles):
                out.append(name)
        elif getattr(hp, "_forward_hooks", None) or getattr(hp, "_backward_hooks", None):
            out.append(name)
    return out


def expect_no_leftover_hooks(model: Any, fn_name: str) -> None:
    """After the learner's ``fn_name`` returned, no hook may stay attached: a forgotten hook
    silently changes every later forward pass. Removes them before failing."""
    leftover = leftover_hooks(model)
    if leftover:
        model.reset_hooks()
        raise CheckFailed(
            f"after `{fn_name}` returned, hooks were still attached to {leftover[:3]}, so every later forward "
            "(or backward) pass runs them too, and they pile up. Use `model.run_with_hooks(...)` or a "
            "`with model.hooks(...):` block, which remove their hooks at the end, or call "
            "`model.reset_hooks()` before returning. (This check has now reset them.)")


class FakeHook:
    """Stands in for a TransformerLens ``HookPoint`` when a check calls a learner's hook function:
    it has the two things a hook may use, ``.name`` and ``.layer()``. ``name`` overrides the
    default ``blocks.{layer}.attn.{kind}`` (e.g. the alias TransformerLens 4.x reports)."""

    def __init__(self, layer: int, kind: str = "hook_z", name: str | None = None):
        self._layer = layer
        self.name = name or f"blocks.{layer}.attn.{kind}"

    def layer(self) -> int:
        return self._layer

    def __repr__(self) -> str:
        return f"HookPoint(name={self.name!r})"


def passed(message: str) -> None:
    print(f"✔ {message}")
