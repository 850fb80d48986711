"""Checks for section 3, "The two conditions" (book/chapters/brackets/03-two-conditions.md).

``fraction_open`` and ``masked_mean`` are checked on hand-made tokens and activations whose
answer is worked out by a loop; ``probe_r2`` on data whose least-squares fit is known exactly
(an exact line on the rows it fits, known residuals on the rows it scores); and
``mean_ablation_accuracy`` against an ablation done another way (a hook on the attention output
that swaps the head's own output for the mean one, or a hook on the MLP's neurons).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from interpbook.checks import (
    CheckFailed,
    call,
    expect_close,
    expect_no_leftover_hooks,
    expect_tensor,
    passed,
)
from interpbook.datasets import brackets as data

__all__ = [
    "check_fraction_open",
    "check_probe_r2",
    "check_masked_mean",
    "check_mean_ablation_accuracy",
]


# --- fraction_open ----------------------------------------------------------------------------

def check_fraction_open(fn: Callable) -> None:
    """``fn(tokens, mask)`` -> [batch]: the share of the string's brackets that are ``(``."""
    strings = ["(()", "", ")", "(((())", "()()()()"]
    tokens, mask = data.tokenize(strings)
    expected = torch.tensor([s.count("(") / len(s) if s else 0.0 for s in strings])
    out = call(fn, tokens, mask, what="(tokens and mask of '(()', '', ')', '(((())', '()()()()', padded to 42)")
    expect_tensor(out, "fraction_open(tokens, mask)", shape=(len(strings),), dims="batch", floating=True)
    out = out.detach().float().cpu()
    if torch.isnan(out).any():
        raise CheckFailed(f"fraction_open returned NaN: {out.tolist()}. The empty string has no brackets; "
                          "divide by the number of brackets clamped to at least 1, so it gets 0.")
    n_real = mask.sum(-1).float()
    if torch.allclose(out, torch.tensor([s.count("(") for s in strings]) / n_real, atol=1e-4):
        raise CheckFailed("you divided by mask.sum(-1), which also counts the [start] and [end] tokens. Divide "
                          "by the number of brackets: tokens equal to data.OPEN or data.CLOSE.")
    if torch.allclose(out, 1 - expected, atol=1e-4) or torch.allclose(
            out, torch.tensor([s.count(")") / len(s) if s else 0.0 for s in strings]), atol=1e-4):
        raise CheckFailed("your numbers are the share of ')', not of '('. data.OPEN (token 3) is '('.")
    expect_close(out, expected, "fraction_open on 5 hand-made strings", hint=(
        "Count tokens == data.OPEN in each row and divide by the number of bracket tokens in that row (not by "
        "the length of the padded row, and not counting [start] or [end])."))
    passed("fraction_open counts the share of '(' among the brackets")


# --- probe_r2 ---------------------------------------------------------------------------------

def check_probe_r2(fn: Callable) -> None:
    """``fn(X, y)`` -> float: R^2 on the odd rows of a least-squares fit (with intercept) on the even rows."""
    # 1. An exact affine function (with an offset): any correct fit scores 1.
    x = torch.arange(12, dtype=torch.float32)[:, None]
    y = 3 * x[:, 0] + 7
    r = call(fn, x, y, what="(X = 0..11 as one column, y = 3x + 7)")
    r = _as_float(r)
    if abs(r - 1.0) > 1e-4:
        raise CheckFailed(f"on y = 3x + 7 exactly, the held-out R^2 should be 1; got {r:.4f}. Did you forget "
                          "the intercept? Append a column of ones to X before solving.")
    # 2. Exact on the even rows, known residuals on the odd rows: the fit is w=2, b=1.
    x = torch.arange(10, dtype=torch.float32)[:, None]
    e = torch.tensor([0.0, 1.0, 0.0, -2.0, 0.0, 1.0, 0.0, 2.0, 0.0, -1.0])
    y = 2 * x[:, 0] + 1 + e
    held = y[1::2]
    expected = 1 - (e[1::2] ** 2).sum() / ((held - held.mean()) ** 2).sum()
    r = call(fn, x, y, what="(X = 0..9, y = 2x + 1 exactly on even rows, plus known noise on odd rows)")
    r = _as_float(r)
    if abs(r - 1.0) < 1e-4:
        raise CheckFailed("you got R^2 = 1 on data whose even rows lie exactly on a line but whose odd rows do "
                          "not: you scored the fit on the rows it was fitted to. Fit on rows 0, 2, 4, ... "
                          "(X[::2]) and compute R^2 on rows 1, 3, 5, ... (X[1::2]).")
    if abs(r - expected.item()) > 1e-4:
        raise CheckFailed(f"on hand-made data whose fit is y = 2x + 1 the held-out R^2 is {expected.item():.4f}; "
                          f"got {r:.4f}. R^2 = 1 - sum((y - pred)^2) / sum((y - mean(y))^2) over the odd rows, "
                          "with the mean of the odd rows' y.")
    # 3. Nearly collinear float32 features with a large offset: float32 least squares breaks down.
    g = torch.Generator().manual_seed(0)
    u = torch.randint(0, 256, (64,), generator=g).double() / 256
    v = torch.randint(0, 2, (64,), generator=g).double() * 2 - 1
    X = torch.stack([1000 + u, 1000 + u + v / 512], 1).float()  # exactly representable in float32
    y = (v + 0.5 * u).float()  # exactly 512 (x2 - x1) + 0.5 (x1 - 1000): R^2 = 1
    r = call(fn, X, y, what="(float32 X [64, 2] of two nearly equal columns near 1000)")
    r = _as_float(r)
    if abs(r - 1.0) > 1e-3:
        raise CheckFailed(f"y is an exact linear function of these two float32 columns, so R^2 should be 1; got "
                          f"{r:.4f}. Nearly collinear columns far from zero defeat float32 least squares: convert "
                          "X and y to float64 (.double()) before torch.linalg.lstsq.")
    passed("probe_r2 fits on the even rows, scores on the odd rows, in float64")


def _as_float(r: Any) -> float:
    if isinstance(r, torch.Tensor):
        if r.numel() != 1:
            raise CheckFailed(f"probe_r2 should return one number; got a tensor of shape {list(r.shape)}.")
        r = r.item()
    if not isinstance(r, (float, int)):
        raise CheckFailed(f"probe_r2 should return a float; got {type(r).__name__}.")
    return float(r)


# --- masked_mean ------------------------------------------------------------------------------

def _loop_mean(act: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(act.shape[1:])
    for p in range(act.shape[1]):
        rows = [act[b, p] for b in range(act.shape[0]) if mask[b, p]]
        if rows:
            out[p] = torch.stack(rows).mean(0)
    return out


def check_masked_mean(fn: Callable) -> None:
    """``fn(act, mask)`` -> act.shape[1:]: the mean over the batch of each position's real (unmasked) rows."""
    # Three rows with 4, 2 and 3 real positions; pads hold 100 so that counting them shows.
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    act = torch.arange(3 * 5 * 2, dtype=torch.float32).reshape(3, 5, 2)
    act = torch.where(mask[..., None].bool(), act, torch.full_like(act, 100.0))
    expected = _loop_mean(act, mask)
    out = call(fn, act.clone(), mask, what="(act [3, 5, 2] with pads set to 100, mask of lengths 4, 2, 3)")
    expect_tensor(out, "masked_mean(act, mask)", shape=(5, 2), dims="pos d", floating=True)
    out = out.detach().float().cpu()
    if torch.allclose(out, act.mean(0)):
        raise CheckFailed("your mean includes the padding positions (it equals act.mean(0)). Weight each row by "
                          "mask[:, :, None] and divide by the number of real rows at that position.")
    if torch.isnan(out).any():
        raise CheckFailed("your mean is NaN where no row has a real token (the last position here). Clamp the "
                          "count to at least 1, so those positions get 0.")
    expect_close(out, expected, "masked_mean on a hand-made [3, 5, 2] activation", hint=(
        "Average over the batch axis only (keep the position axis), and at each position only over the rows "
        "whose mask is 1 there; a position with no real row gets 0."))
    # Works for any trailing shape, e.g. hook_z's [batch, pos, head, d_head].
    z = torch.randn(4, 3, 2, 5, generator=torch.Generator().manual_seed(3))
    zmask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    out = call(fn, z, zmask, what="(a [4, 3, 2, 5] activation shaped like hook_z)")
    expect_tensor(out, "masked_mean(z, mask)", shape=(3, 2, 5), dims="pos head d_head", floating=True)
    expect_close(out.detach().float().cpu(), _loop_mean(z, zmask), "masked_mean on a [4, 3, 2, 5] activation",
                 hint="Reshape the mask to broadcast over every trailing axis: mask.view(*mask.shape, 1, 1).")
    passed("masked_mean averages each position over its real rows only")


# --- mean_ablation_accuracy -------------------------------------------------------------------

def _accuracy_per_class(logits: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> torch.Tensor:
    pred = logits[:, data.CLS_POS].argmax(-1).cpu()
    out = torch.zeros(len(data.CLASSES))
    for k, name in enumerate(data.CLASSES):
        idx = [i for i, c in enumerate(classes) if c == name]
        if idx:
            out[k] = (pred[idx] == labels[idx]).float().mean()
    return out


@torch.no_grad()
def _reference(model: Any, tokens, mask, labels, classes, hook_name: str, head: int | None) -> torch.Tensor:
    """Mean-ablate by another route: for a head, subtract its own output from the attention output
    and add the mean one; for an MLP, replace its neurons (hook_post) by their mean, which the
    (linear) output projection turns into the mean output."""
    layer = int(hook_name.split(".")[1])
    real = mask.bool().cpu()
    if head is not None:
        _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=hook_name)
        z = cache[hook_name][:, :, head].cpu()
        mean = _loop_mean(z, real).to(tokens.device)
        w_o = model.W_O[layer, head]
        saved: dict[str, torch.Tensor] = {}

        def grab(z, hook):
            saved["z"] = z[:, :, head].clone()

        def swap(attn_out, hook):
            return attn_out + (mean - saved["z"]) @ w_o

        hooks = [(hook_name, grab), (f"blocks.{layer}.hook_attn_out", swap)]
    else:
        name = f"blocks.{layer}.mlp.hook_post"
        _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=name)
        mean = _loop_mean(cache[name].cpu(), real).to(tokens.device)

        def replace(post, hook):
            return mean.expand_as(post).clone()

        hooks = [(name, replace)]
    logits = model.run_with_hooks(tokens, attention_mask=mask, fwd_hooks=hooks)
    return _accuracy_per_class(logits, labels, classes)


def check_mean_ablation_accuracy(fn: Callable, model: Any) -> None:
    """``fn(model, tokens, mask, labels, classes, hook_name, head=None)`` -> [6] accuracy per class
    (in data.CLASSES order) with one component mean-ablated."""
    ds = data.make_dataset(60, seed=31)
    tokens, mask = ds.tokens()
    dev = model.cfg.device
    tokens, mask = tokens.to(dev), mask.to(dev)
    cases = [("blocks.0.attn.hook_z", 0), ("blocks.0.attn.hook_z", 1), ("blocks.0.hook_mlp_out", None)]
    with torch.no_grad():
        clean = _accuracy_per_class(model(tokens, attention_mask=mask), ds.labels, ds.classes)
    for hook_name, head in cases:
        what = f"component {hook_name}" + (f", head {head}" if head is not None else "")
        got = call(fn, model, tokens, mask, ds.labels, ds.classes, hook_name, head,
                   what=f"(60 strings per class, {what})")
        expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
        expect_tensor(got, f"mean_ablation_accuracy(..., {hook_name!r}, {head})", shape=(len(data.CLASSES),),
                      dims="class", floating=True)
        got = got.detach().float().cpu()
        expected = _reference(model, tokens, mask, ds.labels, ds.classes, hook_name, head)
        if torch.allclose(got, clean) and not torch.allclose(expected, clean):
            raise CheckFailed(f"for {what} your accuracies equal the clean model's: the ablation did not reach "
                              "the forward pass. Return the edited activation from the hook, and pass "
                              "attention_mask=mask to run_with_hooks.")
        # At most one string per class may differ (float rounding near the decision boundary).
        if (got - expected).abs().max() > 1.5 / 60:
            hint = ""
            if head is not None:
                hint = (" Replace only head `head`'s slice, z[:, :, head], at every position, by the mean over "
                        "the batch of real (unmasked) rows at that position; leave the other head alone, and do "
                        "not set it to zero (zero is not a value the head ever outputs).")
            else:
                hint = (" Replace the whole MLP output at every position by its mean over the batch of the real "
                        "(unmasked) rows at that position; padding rows must not enter the mean.")
            raise CheckFailed(
                f"with {what} mean-ablated, accuracy per class {data.CLASSES} should be "
                f"{[round(a, 3) for a in expected.tolist()]}; got {[round(a, 3) for a in got.tolist()]}.{hint}")
    with torch.no_grad():
        after = _accuracy_per_class(model(tokens, attention_mask=mask), ds.labels, ds.classes)
    if not torch.equal(after, clean):
        raise CheckFailed("after your function ran, the clean model's accuracy changed: it left the model "
                          "modified. Ablate with hooks only, through model.run_with_hooks.")
    passed("mean_ablation_accuracy matches an ablation done another way (heads 0.0, 0.1 and MLP 0)")
