"""Checks for section 5, "Attribution patching" (book/chapters/ioi/05-attribution-patching.md).

Every check compares with an answer known by construction, never with a second copy of the
solution:

* ``cache_with_grads``: the activations must equal the model's own cache. The model has no
  LayerNorm, so a weighted sum of logits is linear in the last layer's ``z`` and its gradient there
  is ``W_O @ W_U`` at the picked positions and zero elsewhere. For earlier activations the
  gradient must predict what a small nudge of the activation does to the metric (a finite
  difference: forward passes only, no autograd).
* ``attribution_scores``: hand-made tensors and an exactly linear metric, for which the
  first-order estimate *is* the effect of patching (computed by patching copies of the tensors
  and evaluating the metric).
* ``attribution_patch``: on real IOI prompts, the last layer's heads are linear in the metric,
  so their estimate equals an exact patch worked out from ``W_O`` and ``W_U``; for earlier hooks
  the estimate must be the slope of the metric *at the corrupted run* along clean − corrupted,
  measured by finite differences; positions before S2 are identical in both runs.
* ``metric_along_path``: endpoints known by construction (α = 0 is the corrupted run; at layer 0
  only S2 differs, so moving S2's residual stream all the way gives the clean run), a patch of
  one position done with a plain replacement hook, and linearity in the last layer.
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
from interpbook.datasets.ioi import IOIDataset, make_ioi_dataset

__all__ = [
    "check_cache_with_grads",
    "check_attribution_scores",
    "check_attribution_patch",
    "check_metric_along_path",
]


# --- shared helpers ---------------------------------------------------------------------------

def _dataset(n: int, seed: int, template: int) -> IOIDataset:
    """One-layout held-out prompts (a template the page does not use, so no position is
    hard-coded by accident)."""
    return make_ioi_dataset(n, split="heldout", seed=seed, templates=[template])


def _mean_ld(logits: torch.Tensor, ds: IOIDataset) -> torch.Tensor:
    """Mean logit(IO) - logit(S) at each prompt's END (written here, not imported)."""
    b = torch.arange(len(ds), device=logits.device)
    end_logits = logits[b, ds.end.to(logits.device)]
    return (end_logits[b, ds.io_tok.to(logits.device)] - end_logits[b, ds.s_tok.to(logits.device)]).mean()


def _grad_off_hint(err: CheckFailed) -> CheckFailed:
    """Turn autograd's 'does not require grad' into advice about the page's global switch."""
    text = str(err)
    if "does not require grad" in text or "does not have a grad_fn" in text:
        return CheckFailed(
            "the backward pass found no graph: gradients are switched off (the page calls "
            "`torch.set_grad_enabled(False)` at the top, and this check runs your function under "
            "`torch.no_grad()` too). Run the forward pass and the backward pass inside "
            "`with torch.enable_grad():`. (Original error: " + text + ")")
    return err


def _call_no_grad(fn: Callable, *args, what: str = "") -> Any:
    """Call the learner's function with gradients off, as they are on the page."""
    try:
        with torch.no_grad():
            return call(fn, *args, what=what)
    except CheckFailed as e:
        raise _grad_off_hint(e) from e


def _expect_dict(value: Any, what: str, names: list[str]) -> dict:
    if not isinstance(value, dict):
        raise CheckFailed(f"{what} should be a dict from hook name to tensor, got {type(value).__name__}.")
    missing = [n for n in names if n not in value]
    if missing:
        raise CheckFailed(
            f"{what} has no entry for {missing} (its keys are {list(value)[:6]}). Key it by the names you were "
            "given. In TransformerLens 4.x `hook.name` can be an alias (a hook attached as `...attn.hook_z` "
            "reports `...attn.o.hook_in`), so pass the name in yourself, e.g. with functools.partial.")
    return value


def _nudge_slope(model: Any, tokens: torch.Tensor, ds: IOIDataset, name: str, direction: torch.Tensor,
                 eps: float = 1e-2) -> float:
    """d/dt metric(activation + t * direction) at t = 0, by a central finite difference."""
    def run(t: float) -> float:
        hook = lambda act, hook: act + t * direction.to(act.device, act.dtype)
        with torch.no_grad():
            return _mean_ld(model.run_with_hooks(tokens, fwd_hooks=[(name, hook)]), ds).item()

    return (run(eps) - run(-eps)) / (2 * eps)


# --- cache_with_grads -------------------------------------------------------------------------

def check_cache_with_grads(fn: Callable, model: Any) -> None:
    """``fn(model, tokens, metric_fn, hook_names)`` -> (acts, grads): two dicts from hook name to the
    activation and to d metric / d activation, from one forward and one backward pass."""
    ds = _dataset(8, seed=11, template=2)
    device = model.cfg.device
    tokens = ds.corrupted_tokens.to(device)
    n_layers, end = model.cfg.n_layers, int(ds.end[6])
    last = f"blocks.{n_layers - 1}.attn.hook_z"
    names = ["blocks.0.attn.hook_z", last, "blocks.1.hook_resid_pre"]
    picks = [(1, 5, 7, 1.0), (3, 9, 20, 2.0), (6, end, 8, -1.0)]  # (prompt, position, token, weight)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return sum(w * logits[b, p, t] for b, p, t, w in picks)

    out = _call_no_grad(fn, model, tokens, metric, names,
                        what="(8 ABC prompts; metric: a weighted sum of three logits)")
    expect_no_leftover_hooks(model, "cache_with_grads")
    if not (isinstance(out, tuple) and len(out) == 2):
        raise CheckFailed(f"cache_with_grads should return a pair (acts, grads), got {type(out).__name__}.")
    acts = _expect_dict(out[0], "acts", names)
    grads = _expect_dict(out[1], "grads", names)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    for name in names:
        ref = cache[name]
        if grads[name] is None:
            raise CheckFailed(
                f"grads[{name!r}] is None: no gradient reached this activation. Either the backward pass "
                "never ran through it (an activation replaced by a detached copy, or by a new leaf tensor, cuts "
                "every path to the layers before it), or you read `.grad` of a tensor that is not on the path to "
                "the logits: in TransformerLens 4.x a forward hook at `hook_z` receives a reshaped copy, so "
                "`.retain_grad()` on it never gets a gradient. A backward hook (`bwd_hooks`) avoids both.")
        for d, kind in ((acts, "acts"), (grads, "grads")):
            expect_tensor(d[name], f"{kind}[{name!r}]", shape=tuple(ref.shape), floating=True)
        expect_close(acts[name].detach().float(), ref.float(), f"acts[{name!r}]", atol=1e-5, hint=(
            "Store the activation your forward hook receives (its .detach()), from the run on `tokens`."))
    # Last layer: linear up to the logits, so the gradient is W_O[h] @ W_U[:, token] at each pick.
    w_ou = torch.einsum("hdm,mv->hdv", model.W_O[n_layers - 1].detach(), model.W_U.detach())
    expected = torch.zeros_like(cache[last])
    for b, p, t, w in picks:
        expected[b, p] += w * w_ou[:, :, t]
    got = grads[last].detach().float()
    if got.abs().max() == 0:
        raise CheckFailed(f"grads[{last!r}] is all zeros: the metric's gradient never reached it. Call "
                          "`.backward()` on metric_fn(logits) while the hooks are attached.")
    expect_close(got, expected.float(), f"grads[{last!r}]", atol=1e-4, rtol=1e-3, hint=(
        "The metric is a weighted sum of three logits and the last layer reaches the logits linearly "
        "(z @ W_O @ W_U), so this gradient is known exactly. Store the gradient your backward hook receives "
        "(of the metric with respect to that activation), from a single backward pass of metric_fn(logits)."))
    # Earlier layers: the gradient must predict a small nudge of the activation (finite difference).
    g = torch.Generator().manual_seed(0)
    for name in ("blocks.0.attn.hook_z", "blocks.1.hook_resid_pre"):
        ref = cache[name].float().cpu()
        v = torch.randn(ref.shape, generator=g)
        v = (v / v.norm() * ref.norm() * 1e-2).to(device)
        predicted = (grads[name].detach().float() * v).sum().item()

        def run(t: float, name=name, v=v) -> float:
            hook = lambda act, hook: act + t * v.to(act.dtype)
            with torch.no_grad():
                return metric(model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])).item()

        slope = (run(1.0) - run(-1.0)) / 2
        if abs(predicted - slope) > 2e-2 * abs(slope) + 1e-3:
            raise CheckFailed(
                f"grads[{name!r}] does not predict what a small nudge of that activation does to the metric "
                f"(measured by a finite difference: {slope:.4g}; your gradient predicts {predicted:.4g}). The "
                "last layer's gradient was right, so the backward pass reached it but not all the way back: if "
                "a hook replaced a later activation by a detached tensor or a new leaf, the gradient only flows "
                "along the paths that skip it. Read gradients with backward hooks and leave the forward pass "
                "unchanged.")
    passed("cache_with_grads: activations match the cache, gradients match W_O @ W_U and finite differences")


# --- attribution_scores -----------------------------------------------------------------------

def _linear_case(shape: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Clean and corrupted tensors, a linear metric f(a) = sum(w * a) + 3 and, for every
    (pos, ...) slot, the normalised effect of patching that slot (by patching a copy)."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(shape, generator=g)
    corrupted = torch.randn(shape, generator=g)
    w = torch.randn(shape, generator=g)
    f = lambda a: float((w * a).sum()) + 3.0
    f_clean, f_corr = f(clean), f(corrupted)
    out_shape = shape[1:-1]
    effect = torch.zeros(out_shape)
    for idx in torch.cartesian_prod(*[torch.arange(n) for n in out_shape]).reshape(-1, len(out_shape)).tolist():
        patched = corrupted.clone()
        patched[(slice(None), *idx)] = clean[(slice(None), *idx)]
        effect[tuple(idx)] = (f(patched) - f_corr) / (f_clean - f_corr)
    return dict(clean=clean, corrupted=corrupted, grad=w, ld_clean=f_clean, ld_corrupted=f_corr, effect=effect)


def check_attribution_scores(fn: Callable) -> None:
    """``fn(act_clean, act_corrupted, grad, ld_clean, ld_corrupted)`` -> [pos, ...]: the first-order
    estimate of patching each (pos, ...) slot, summed over the batch and the last axis, normalised."""
    cases = [
        ((3, 4, 5, 2), 3, "[batch 3, pos 4, head 5, d_head 2]", "pos head"),
        ((2, 6, 7), 1, "[batch 2, pos 6, d_model 7]", "pos"),
    ]
    for shape, seed, described, dims in cases:
        c = _linear_case(shape, seed)
        denom = c["ld_clean"] - c["ld_corrupted"]
        assert 1.5 < abs(denom) and abs(c["effect"]).max() > 0.05  # the seeds make the slips visible
        out = call(fn, c["clean"].clone(), c["corrupted"].clone(), c["grad"].clone(), c["ld_clean"],
                   c["ld_corrupted"], what=f"(hand-made activations {described}, an exactly linear metric)")
        expected = c["effect"]
        batch = shape[0]
        if isinstance(out, torch.Tensor) and tuple(out.shape) != tuple(expected.shape):
            if tuple(out.shape) == tuple(shape[:-1]):
                raise CheckFailed(
                    f"on activations {described} you returned shape {list(out.shape)}: the batch axis is still "
                    f"there. The gradient is that of the metric over the whole batch, so add up the batch too: "
                    f"expected {list(expected.shape)} = [{dims}].")
            if len(shape) == 4 and tuple(out.shape) == (shape[1], shape[3]):
                raise CheckFailed(
                    f"on activations {described} you returned shape {list(out.shape)} = [pos, d_head]: you "
                    "summed over the head axis. The dot product (clean - corrupted) . grad runs over the "
                    "vector's own components, the last axis (d_head); keep the heads apart.")
        expect_tensor(out, "attribution_scores(...)", shape=tuple(expected.shape), dims=dims, floating=True)
        out = out.detach().float().cpu()
        if torch.allclose(out, -expected, atol=1e-4):
            raise CheckFailed(
                "your estimates have the opposite sign: the patch moves the corrupted activation *towards the "
                "clean one*, so the change is act_clean - act_corrupted (not corrupted - clean).")
        if torch.allclose(out, expected * denom, atol=1e-4, rtol=1e-3):
            raise CheckFailed(
                "your estimates are not normalised: divide by (ld_clean - ld_corrupted), so that 1 means "
                "'restores the clean behaviour' as in activation patching.")
        if torch.allclose(out, expected / batch, atol=1e-4, rtol=1e-3):
            raise CheckFailed(
                f"your estimates are {batch} (the batch size) times too small: you averaged over the batch. "
                "`grad` is the gradient of the metric of the whole batch, so each prompt's term already carries "
                "its share of it: add the terms up.")
        expect_close(out, expected, f"attribution_scores on {described}", atol=1e-4, rtol=1e-3, hint=(
            "For a metric that is exactly linear, the first-order estimate equals the effect of patching. Entry "
            "[pos, ...] is the sum over the batch and the last axis of (act_clean - act_corrupted) * grad, divided "
            "by (ld_clean - ld_corrupted)."))
        if abs(out.sum().item() - 1.0) > 1e-3:  # pragma: no cover - implied by the comparison above
            raise CheckFailed("for a linear metric the estimates of all slots add up to 1.")
    passed("attribution_scores equals the exact patching effect of a linear metric, for heads and the residual stream")


# --- attribution_patch ------------------------------------------------------------------------

def check_attribution_patch(fn: Callable, model: Any) -> None:
    """``fn(model, ds, hook_names)`` -> {name: [pos, ...]}: normalised attribution-patching estimates
    (gradients from the corrupted run)."""
    ds = _dataset(12, seed=5, template=2)
    device = model.cfg.device
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    last = f"blocks.{n_layers - 1}.attn.hook_z"
    names = ["blocks.0.attn.hook_z", last, "blocks.1.hook_resid_pre"]
    out = _call_no_grad(fn, model, ds, names, what="(12 prompts of template 2)")
    expect_no_leftover_hooks(model, "attribution_patch")
    out = _expect_dict(out, "attribution_patch(model, ds, hook_names)", names)
    n_pos = ds.tokens.shape[1]
    for name in names:
        shape, dims = ((n_pos, n_heads), "pos head") if name.endswith("hook_z") else ((n_pos,), "pos")
        expect_tensor(out[name], f"the result for {name!r}", shape=shape, dims=dims, floating=True)
    got = {n: v.detach().float().cpu() for n, v in out.items()}

    clean, corrupted = ds.tokens.to(device), ds.corrupted_tokens.to(device)
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean, names_filter=lambda n: n in names)
        corr_logits, corr_cache = model.run_with_cache(corrupted, names_filter=lambda n: n in names)
    ld_clean, ld_corr = _mean_ld(clean_logits, ds).item(), _mean_ld(corr_logits, ds).item()
    denom = ld_clean - ld_corr
    s2 = int(ds.s2_pos[0])
    for name in names:
        if got[name][:s2].abs().max() > 1e-5:
            raise CheckFailed(
                f"the result for {name!r} is not zero before S2 (position {s2}): there the clean and the "
                "ABC prompt are identical, so clean - corrupted is zero. Compare the clean and corrupted "
                "activations of the same prompts, position by position.")

    # The last layer is linear up to the logits: its estimate is the exact patching effect.
    direction = (model.W_U[:, ds.io_tok.to(device)] - model.W_U[:, ds.s_tok.to(device)]).T.detach()  # [b, d_model]
    b = torch.arange(len(ds), device=device)
    end = ds.end.to(device)
    dz = (clean_cache[last] - corr_cache[last])[b, end]  # [batch, head, d_head]
    per_head = torch.einsum("bhd,hdm,bm->h", dz, model.W_O[n_layers - 1].detach(), direction) / len(ds) / denom
    expected_last = torch.zeros(n_pos, n_heads)
    expected_last[int(ds.end[0])] = per_head.float().cpu()
    g_last = got[last]
    if torch.allclose(g_last, -expected_last, atol=1e-4) and expected_last.abs().max() > 1e-3:
        raise CheckFailed("your estimates have the opposite sign: use act_clean - act_corrupted (as in "
                          "attribution_scores).")
    if torch.allclose(g_last, expected_last * denom, atol=1e-3, rtol=1e-3):
        raise CheckFailed(f"your estimates are not normalised: divide by ld_clean - ld_corrupted ({denom:.2f} here).")
    if torch.allclose(g_last, expected_last * len(ds), atol=1e-3, rtol=1e-3):
        raise CheckFailed(
            f"your estimates are {len(ds)} (the number of prompts) times too large: backpropagate the *mean* "
            "logit difference over the prompts, the same number activation patching reports.")
    expect_close(g_last, expected_last, f"the result for {last!r}", atol=2e-4, rtol=2e-3, hint=(
        "The last layer reaches the logits linearly, so its estimate equals the exact effect of patching each "
        "head at each position. Take gradients of the mean logit difference on the corrupted prompts, "
        "compare with the clean run's activations, and normalise."))

    # Earlier hooks: the estimate is the slope of the metric at the corrupted run along clean - corrupted.
    def slopes(name: str, at: str) -> torch.Tensor:
        delta = clean_cache[name] - corr_cache[name]
        tokens = corrupted if at == "corrupted" else clean
        shape = got[name].shape
        out = torch.zeros(shape)
        for p in range(s2, n_pos):
            for h in (range(n_heads) if len(shape) == 2 else [None]):
                mask = torch.zeros_like(delta)
                if h is None:
                    mask[:, p] = 1.0
                else:
                    mask[:, p, h] = 1.0
                idx = (p,) if h is None else (p, h)
                out[idx] = _nudge_slope(model, tokens, ds, name, delta * mask) / denom
        return out

    for name in ("blocks.0.attn.hook_z", "blocks.1.hook_resid_pre"):
        expected = slopes(name, "corrupted")
        if not torch.allclose(got[name], expected, atol=2e-3, rtol=3e-2):
            at_clean = slopes(name, "clean")
            if torch.allclose(got[name], at_clean, atol=2e-3, rtol=3e-2):
                raise CheckFailed(
                    f"the result for {name!r} matches the slope of the metric at the *clean* run: you took the "
                    "gradient on the clean prompts. Attribution patching expands the metric around the run being "
                    "patched, the corrupted one: backpropagate from the corrupted prompts' logits.")
        expect_close(got[name], expected, f"the result for {name!r}", atol=2e-3, rtol=3e-2, hint=(
            "Each entry should be the slope of the normalised metric of the corrupted run when that one "
            "activation is moved a little towards its clean value (measured here by finite differences): the "
            "gradient on the corrupted run, dotted with (clean - corrupted), over (ld_clean - ld_corrupted)."))
    passed("attribution_patch: exact in the last layer, the corrupted run's slope in earlier layers")


# --- metric_along_path ------------------------------------------------------------------------

def check_metric_along_path(fn: Callable, model: Any) -> None:
    """``fn(model, ds, hook_name, pos, alphas, head=None)`` -> [n_alphas]: the normalised metric with the
    activation at (pos[, head]) set to corrupted + alpha * (clean - corrupted)."""
    ds = _dataset(12, seed=7, template=2)
    device = model.cfg.device
    n_layers = model.cfg.n_layers
    s2, end = int(ds.s2_pos[0]), int(ds.end[0])
    alphas = torch.tensor([0.0, 0.25, 0.5, 1.0])
    clean, corrupted = ds.tokens.to(device), ds.corrupted_tokens.to(device)
    last = f"blocks.{n_layers - 1}.attn.hook_z"
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean, names_filter=lambda n: n in (last, "blocks.1.hook_resid_pre"))
        ld_corr = _mean_ld(model(corrupted), ds).item()
    ld_clean = _mean_ld(clean_logits, ds).item()
    denom = ld_clean - ld_corr

    def run(hook_name: str, pos: int, head: int | None, what: str) -> torch.Tensor:
        args = (model, ds, hook_name, pos, alphas.clone())
        out = _call_no_grad(fn, *args, head, what=what) if head is not None else _call_no_grad(fn, *args, what=what)
        expect_no_leftover_hooks(model, "metric_along_path")
        expect_tensor(out, f"metric_along_path(..., {hook_name!r}, pos={pos}, head={head})", shape=(len(alphas),),
                      dims="n_alphas", floating=True)
        out = out.detach().float().cpu()
        if abs(out[0].item() - 1) < 1e-3 and abs(out[-1].item()) < 1e-2:
            raise CheckFailed(
                "your path runs backwards: at alpha = 0 the metric should be the corrupted run's (0 once "
                "normalised) and at alpha = 1 the patched value. Set the activation to "
                "corrupted + alpha * (clean - corrupted) in the corrupted run.")
        if abs(out[0].item()) > 1e-3:
            hint = ""
            if abs(out[0].item() - ld_corr) < 1e-2:
                hint = " It equals the corrupted run's raw logit difference: normalise with section 2's metric."
            raise CheckFailed(
                f"at alpha = 0 nothing is patched, so the normalised metric should be 0, got {out[0].item():.4f}."
                + hint)
        return out

    # 1. Layer 0's residual stream at S2: the only position where the prompts differ, so alpha = 1 is the clean run.
    out = run("blocks.0.hook_resid_pre", s2, None, f"(hook blocks.0.hook_resid_pre, pos = S2 = {s2})")
    if abs(out[-1].item() - denom) < 1e-2 * abs(denom):
        raise CheckFailed("at alpha = 1 you return ld_clean - ld_corrupted: divide by it (section 2's "
                          "normalised metric), so that 1 means the clean behaviour is restored.")
    expect_close(out[-1:], torch.ones(1), "the value at alpha = 1 for layer 0's residual stream at S2", atol=1e-3,
                 hint="At layer 0 only S2 differs between the two prompts, so moving it all the way to its clean "
                      "value gives the clean run: normalised metric 1.")

    # 2. Layer 1's residual stream at S2 (END differs too): alpha = 1 must patch S2 alone.
    name = "blocks.1.hook_resid_pre"

    def replace_s2(act, hook):
        act = act.clone()
        act[:, s2] = clean_cache[name][:, s2]
        return act

    with torch.no_grad():
        one_pos = (_mean_ld(model.run_with_hooks(corrupted, fwd_hooks=[(name, replace_s2)]), ds).item() - ld_corr) / denom
    out = run(name, s2, None, f"(hook {name}, pos = S2 = {s2})")
    if abs(out[-1].item() - 1.0) < 1e-3 and abs(one_pos - 1.0) > 0.05:
        raise CheckFailed(f"at alpha = 1 you restored the whole clean run: you moved every position of {name!r}, "
                          f"not only pos = {s2}. Change act[:, pos] only.")
    expect_close(out[-1:], torch.tensor([one_pos]), f"the value at alpha = 1 for {name!r} at S2", atol=2e-3, hint=(
        "At alpha = 1 the activation at that one position is the clean one: the result of activation patching "
        "that position."))

    # 3. A last-layer head at END: linear, so the path is alpha * (its exact patching effect).
    with torch.no_grad():
        corr_z = model.run_with_cache(corrupted, names_filter=lambda n: n == last)[1][last]
    direction = (model.W_U[:, ds.io_tok.to(device)] - model.W_U[:, ds.s_tok.to(device)]).T.detach()
    b = torch.arange(len(ds), device=device)
    dz = (clean_cache[last] - corr_z)[b, ds.end.to(device)]
    per_head = (torch.einsum("bhd,hdm,bm->h", dz, model.W_O[n_layers - 1].detach(), direction) / len(ds) / denom)
    per_head = per_head.float().cpu()
    head = int(per_head.abs().argmax())
    out = run(last, end, head, f"(hook {last}, pos = END = {end}, head = {head})")
    if torch.allclose(out, alphas * per_head.sum(), atol=2e-3) and not torch.allclose(
            alphas * per_head.sum(), alphas * per_head[head], atol=2e-3):
        raise CheckFailed(f"you moved every head's z at position {end}, not only head {head}: index the head "
                          "axis too, act[:, pos, head].")
    expect_close(out, alphas * per_head[head], f"the path of last-layer head {head} at END", atol=2e-3, rtol=1e-2,
                 hint="The last layer reaches the logits linearly, so the normalised metric grows in a straight "
                      "line from 0 to the head's patching effect. Change only act[:, pos, head].")
    passed("metric_along_path: 0 at alpha = 0, the patching effect at alpha = 1, a straight line in the last layer")
