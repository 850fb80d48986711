"""Checks for section 3, "Path patching" (book/chapters/ioi/03-path-patching.md).

The model is attention-only with no LayerNorm, so the residual stream is a plain sum of the
embeddings and every head's output. That gives every check here an independent route whose
answer holds by construction:

* a head's *direct* path to the logits is its output added to the final residual stream, so
  the direct-path effect can be measured by a forward pass that changes only
  ``blocks.{last}.hook_resid_post`` by (corrupted - clean) output of that head;
* when only the sender's output differs from the clean run (every other head frozen), a
  receiver's query (key, value) changes by exactly (sender's corrupted - clean output) @ W_Q
  (W_K, W_V) of the receiver head. The expected path-patching result is one forward pass with
  those queries written in.

The hook checks hand the learner's hook made-up activations, a stand-in for the ``HookPoint``
and caches built from hand-made tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformer_lens import ActivationCache

from interpbook.checks import (
    CheckFailed,
    FakeHook,
    call,
    expect_close,
    expect_no_leftover_hooks,
    expect_tensor,
    passed,
)
from interpbook.datasets.ioi import IOIDataset, make_ioi_dataset

__all__ = [
    "check_direct_path_effect",
    "check_freeze_and_patch_z_hook",
    "check_patch_receiver_hook",
    "check_path_patch",
    "check_path_patch_sweep",
]


# --- shared helpers ---------------------------------------------------------------------------

def _mixed_dataset(n: int = 24, seed: int = 7) -> IOIDataset:
    """Held-out prompts from all templates: END differs between prompts, so position -1 is a pad
    token for the shorter ones."""
    ds = make_ioi_dataset(n, split="heldout", seed=seed)
    assert len(set(ds.end.tolist())) > 1, "the check's dataset should mix prompt lengths"
    return ds


def _caches(model: Any, ds: IOIDataset):
    tokens = ds.tokens.to(model.cfg.device)
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(tokens)
        _, corrupted_cache = model.run_with_cache(ds.corrupted_tokens.to(model.cfg.device))
    return clean_logits, clean_cache, corrupted_cache


def _logit_diff(logits: torch.Tensor, ds: IOIDataset) -> torch.Tensor:
    """logit(IO) - logit(S) at each prompt's END, on the CPU."""
    lg = logits.detach().float().cpu()
    b = torch.arange(len(ds))
    end = lg[b, ds.end]
    return end[b, ds.io_tok] - end[b, ds.s_tok]


def _head_out(model: Any, cache_a, cache_b, layer: int, head: int) -> torch.Tensor:
    """(cache_a - cache_b) output of one head, [batch, pos, d_model] (the bias cancels)."""
    dz = cache_a["z", layer][:, :, head] - cache_b["z", layer][:, :, head]
    return dz @ model.W_O[layer, head].to(dz.dtype)


# --- direct_path_effect -----------------------------------------------------------------------

@torch.no_grad()
def _direct_by_final_resid(model: Any, ds: IOIDataset, clean_logits, clean_cache, corrupted_cache) -> torch.Tensor:
    """For every head, a clean run whose final residual stream alone gets the head's corrupted -
    clean output added: the head's direct path, and nothing else, carries the corrupted value."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    base = _logit_diff(clean_logits, ds)
    tokens = ds.tokens.to(model.cfg.device)
    out = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        for head in range(n_heads):
            delta = _head_out(model, corrupted_cache, clean_cache, layer, head)

            def add(resid, hook, delta=delta):
                return resid + delta.to(resid.dtype)

            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{n_layers - 1}.hook_resid_post", add)])
            out[layer, head] = (_logit_diff(logits, ds) - base).mean()
    return out


def _direct_at(model: Any, ds: IOIDataset, clean_cache, corrupted_cache, pos: torch.Tensor) -> torch.Tensor:
    """The direct-path effect read at positions ``pos`` (for diagnosing a wrong position)."""
    b = torch.arange(len(ds))
    w_u = model.W_U.detach().float().cpu()
    direction = (w_u[:, ds.io_tok] - w_u[:, ds.s_tok]).T  # [batch, d_model]
    out = []
    for layer in range(model.cfg.n_layers):
        dz = (corrupted_cache["z", layer] - clean_cache["z", layer]).float().cpu()[b, pos]
        w_o = model.W_O[layer].detach().float().cpu()
        out.append(torch.einsum("bhd,hdm,bm->bh", dz, w_o, direction).mean(0))
    return torch.stack(out)


def check_direct_path_effect(fn: Callable, model: Any) -> None:
    """``fn(model, ds, clean_cache, corrupted_cache)`` -> [n_layers, n_heads]: the mean change of
    the logit difference (patched - clean) when only each head's direct path to the logits carries
    its corrupted output."""
    ds = _mixed_dataset()
    clean_logits, clean_cache, corrupted_cache = _caches(model, ds)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    got = call(fn, model, ds, clean_cache, corrupted_cache,
               what=f"(ds: {len(ds)} held-out prompts of mixed templates, END between "
                    f"{int(ds.end.min())} and {int(ds.end.max())})")
    expect_tensor(got, "direct_path_effect(...)", shape=(n_layers, n_heads), dims="n_layers n_heads",
                  floating=True)
    got = got.detach().float().cpu()
    expected = _direct_by_final_resid(model, ds, clean_logits, clean_cache, corrupted_cache)
    if not torch.allclose(got, expected, atol=2e-3, rtol=1e-3):
        if torch.allclose(got, -expected, atol=2e-3, rtol=1e-3):
            raise CheckFailed(
                "your numbers have the opposite sign of the expected ones. Noising replaces the clean output "
                "by the corrupted one, so the change is (corrupted - clean) output, and a head that helps the "
                "model gets a negative number: the logit difference goes down when its path is noised.")
        last = torch.full_like(ds.end, ds.tokens.shape[1] - 1)
        if torch.allclose(got, _direct_at(model, ds, clean_cache, corrupted_cache, last), atol=2e-3, rtol=1e-3):
            raise CheckFailed(
                "your numbers match reading every head's output at position -1. The prompts are right-padded "
                "to the longest one, so for shorter prompts position -1 is a pad token. Read each prompt's "
                "output at its own END, `z[torch.arange(batch), ds.end]`.")
    expect_close(got, expected, "the direct-path effect per head", atol=2e-3, rtol=1e-3, hint=(
        "For each head: (corrupted - clean) z at each prompt's END, times the head's W_O, dotted with "
        "W_U[:, io] - W_U[:, s] of that prompt, averaged over prompts. The reference adds the head's "
        "corrupted - clean output to the final residual stream of a clean run and measures the logit "
        "difference."))
    passed("direct_path_effect matches runs that change only the final residual stream")


# --- freeze_and_patch_z_hook ------------------------------------------------------------------

def _z_caches(n_layers: int = 3, n_heads: int = 4) -> tuple[ActivationCache, ActivationCache]:
    g = torch.Generator().manual_seed(3)
    shape = (2, 5, n_heads, 3)
    clean = {f"blocks.{l}.attn.hook_z": torch.randn(shape, generator=g) for l in range(n_layers)}
    corrupted = {f"blocks.{l}.attn.hook_z": torch.randn(shape, generator=g) + 5.0 for l in range(n_layers)}
    return ActivationCache(clean, None), ActivationCache(corrupted, None)


def check_freeze_and_patch_z_hook(fn: Callable) -> None:
    """``fn(z, hook, sender, clean_cache, corrupted_cache)`` returns this layer's z with every head
    set to its clean value, except the sender, set to its corrupted value."""
    clean_cache, corrupted_cache = _z_caches()
    saved = {k: v.clone() for k, v in clean_cache.items()}, {k: v.clone() for k, v in corrupted_cache.items()}
    sender = (1, 2)
    for layer in (1, 0, 2):
        z_in = torch.randn(2, 5, 4, 3, generator=torch.Generator().manual_seed(10 + layer)) - 5.0
        hook = FakeHook(layer, "hook_z")
        out = call(fn, z_in.clone(), hook, sender, clean_cache, corrupted_cache,
                   what=f"(hook.layer() == {layer}, sender {sender})")
        if out is None:
            raise CheckFailed("your hook returned None. Return the new z: what a hook returns replaces the "
                              "activation in the forward pass.")
        expect_tensor(out, "the hook's result", shape=(2, 5, 4, 3), dims="batch pos head d_head")
        for k, v in clean_cache.items():
            if not torch.equal(v, saved[0][k]) or not torch.equal(corrupted_cache[k], saved[1][k]):
                raise CheckFailed(
                    f"your hook changed the tensors inside the caches ({k}). Indexing a cache gives you the "
                    "stored tensor itself, so writing into it edits the cache for every later run: `.clone()` "
                    "it before writing.")
        expected = clean_cache["z", layer].clone()
        if layer == sender[0]:
            expected[:, :, sender[1]] = corrupted_cache["z", layer][:, :, sender[1]]
        others = [h for h in range(4) if not (layer == sender[0] and h == sender[1])]
        if torch.equal(out[:, :, others], z_in[:, :, others]):
            raise CheckFailed(
                f"at layer {layer} the heads other than the sender kept the values of the current run. Freeze "
                "them: every head but the sender takes its value from the clean cache, so that the sender's "
                "change cannot reach the receivers through another head.")
        if layer == sender[0]:
            s = sender[1]
            if torch.equal(out[:, :, s], clean_cache["z", layer][:, :, s]):
                raise CheckFailed(f"at the sender's layer ({layer}) the sender head {s} got its clean value. The "
                                  "sender is the one head that takes its *corrupted* value.")
        elif not torch.equal(out, expected) and torch.equal(out[:, :, sender[1]], corrupted_cache["z", layer][:, :, sender[1]]):
            raise CheckFailed(
                f"at layer {layer}, which is not the sender's layer ({sender[0]}), your hook wrote the corrupted "
                f"value into head {sender[1]}. Only the sender (layer {sender[0]}, head {sender[1]}) is "
                "corrupted: compare `hook.layer()` with the sender's layer.")
        expect_close(out, expected, f"the hook's z at layer {layer}", atol=0, rtol=0, hint=(
            "Every head takes `clean_cache['z', layer]`, except the sender head in the sender's layer, which "
            "takes `corrupted_cache['z', layer]`."))
    passed("freeze_and_patch_z_hook freezes every head and corrupts only the sender")


# --- patch_receiver_hook ----------------------------------------------------------------------

def check_patch_receiver_hook(fn: Callable) -> None:
    """``fn(x, hook, receivers, recorded)`` replaces this layer's receiver heads of ``x`` (q, k or v,
    [batch, pos, head, d_head]) by ``recorded[layer]`` and leaves the other heads alone."""
    g = torch.Generator().manual_seed(5)
    recorded = {1: torch.randn(2, 5, 4, 3, generator=g) + 5.0, 3: torch.randn(2, 5, 4, 3, generator=g) + 9.0}
    receivers = [(1, 0), (3, 2), (1, 3)]
    for layer, kind in ((1, "hook_q"), (3, "hook_k"), (2, "hook_v")):
        x = torch.randn(2, 5, 4, 3, generator=g)
        original = x.clone()
        saved = {k: v.clone() for k, v in recorded.items()}
        out = call(fn, x, FakeHook(layer, kind), receivers, recorded,
                   what=f"(hook.layer() == {layer}, receivers {receivers})")
        result = out if out is not None else x
        expect_tensor(result, "the hook's result", shape=(2, 5, 4, 3), dims="batch pos head d_head")
        if any(not torch.equal(recorded[k], saved[k]) for k in recorded):
            raise CheckFailed("your hook changed the recorded tensors. Read them, do not write into them.")
        mine = [h for l, h in receivers if l == layer]
        expected = original.clone()
        for h in mine:
            expected[:, :, h] = recorded[layer][:, :, h]
        if layer not in recorded and not torch.equal(result, original):
            raise CheckFailed(f"at layer {layer}, where no receiver sits, your hook changed the activation. Only "
                              "the receivers of `hook.layer()` are replaced.")
        if layer in recorded and torch.equal(result, recorded[layer]):
            raise CheckFailed(
                f"at layer {layer} your hook replaced every head by the recorded values. Only the receivers "
                f"in this layer ({mine}) change; the other heads keep this run's values.")
        other = [h for l, h in receivers if l != layer and h not in mine]
        if other and layer in recorded and not torch.equal(result[:, :, other], original[:, :, other]):
            raise CheckFailed(
                f"at layer {layer} your hook also replaced head(s) {other}, which are receivers in another layer. "
                "A receiver is a (layer, head) pair: keep only those whose layer is `hook.layer()`.")
        expect_close(result, expected, f"the hook's result at layer {layer}", atol=0, rtol=0, hint=(
            "For each (layer, head) in receivers with layer == hook.layer(), set x[:, :, head] to "
            "recorded[layer][:, :, head]; leave everything else."))
    passed("patch_receiver_hook replaces exactly the receivers' inputs")


# --- path_patch -------------------------------------------------------------------------------

_W = {"q": "W_Q", "k": "W_K", "v": "W_V"}


@torch.no_grad()
def _linear_path_patch(model: Any, ds: IOIDataset, sender: tuple[int, int], receivers: Sequence[tuple[int, int]],
                       components: str, clean_cache, corrupted_cache) -> torch.Tensor:
    """Per-prompt logit difference of a clean run whose receivers' inputs (each component in
    ``components``) are the clean ones plus (sender's corrupted - clean output) @ W_c: what path
    patching must give, by linearity, in a model without LayerNorm."""
    s_layer, s_head = sender
    delta = _head_out(model, corrupted_cache, clean_cache, s_layer, s_head)  # [batch, pos, d_model]
    hooks = []
    for c in components:
        w = getattr(model, _W[c])
        for layer in sorted({l for l, _ in receivers}):
            heads = [h for l, h in receivers if l == layer]

            def write(x, hook, layer=layer, heads=heads, c=c, w=w):
                x = x.clone()
                for h in heads:
                    change = delta @ w[layer, h].to(delta.dtype) if layer > s_layer else 0.0
                    x[:, :, h] = clean_cache[c, layer][:, :, h] + change
                return x

            hooks.append((f"blocks.{layer}.attn.hook_{c}", write))
    logits = model.run_with_hooks(ds.tokens.to(model.cfg.device), fwd_hooks=hooks)
    return _logit_diff(logits, ds)


@torch.no_grad()
def _unfrozen_path_patch(model: Any, ds: IOIDataset, sender, receivers, component, corrupted_cache) -> torch.Tensor:
    """The slip of step 2 without freezing: the sender's change also reaches the receivers
    through every head in between."""
    s_layer, s_head = sender
    tokens = ds.tokens.to(model.cfg.device)
    recorded = {}

    def corrupt(z, hook):
        z = z.clone()
        z[:, :, s_head] = corrupted_cache["z", s_layer][:, :, s_head]
        return z

    def record(x, hook):
        recorded[hook.layer()] = x.clone()

    layers = sorted({l for l, _ in receivers})
    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(f"blocks.{s_layer}.attn.hook_z", corrupt)]
                         + [(f"blocks.{l}.attn.hook_{component}", record) for l in layers])

    def write(x, hook):
        x = x.clone()
        for l, h in receivers:
            if l == hook.layer():
                x[:, :, h] = recorded[l][:, :, h]
        return x

    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{l}.attn.hook_{component}", write) for l in layers])
    return _logit_diff(logits, ds)


_PATH_CASES = (
    # (sender, receivers, component): a path that skips layer 1 (freezing matters), a key path
    # whose query path is large, a sender in layer 1 into the last layer, and receivers on both
    # sides of the sender's layer (no path into the earlier one).
    ((0, 6), [(2, 6), (2, 7)], "q"),
    ((0, 6), [(1, 0), (1, 2), (1, 7)], "k"),
    ((1, 2), [(3, 5)], "k"),
    ((2, 6), [(1, 7), (3, 6)], "v"),
)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(a, b, atol=1e-3, rtol=1e-3))


def check_path_patch(fn: Callable, model: Any) -> None:
    """``fn(model, ds, sender, receivers, component, clean_cache, corrupted_cache)`` -> [batch]:
    the logit difference when only the path sender -> receivers' ``component`` carries the
    sender's corrupted output."""
    ds = _mixed_dataset()
    clean_logits, clean_cache, corrupted_cache = _caches(model, ds)
    base = _logit_diff(clean_logits, ds)
    for sender, receivers, component in _PATH_CASES:
        what = f"(sender {sender}, receivers {receivers}, component {component!r}; {len(ds)} prompts)"
        got = call(fn, model, ds, sender, list(receivers), component, clean_cache, corrupted_cache, what=what)
        expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
        expect_tensor(got, f"path_patch{what}", shape=(len(ds),), dims="batch", floating=True)
        got = got.detach().float().cpu()
        with torch.no_grad():
            after = _logit_diff(model(ds.tokens.to(model.cfg.device)), ds)
        if not _close(after, base):
            raise CheckFailed("after your function ran, the clean model's logit difference changed: it left the "
                              "model (or a cache) modified. Patch with hooks only, and clone before writing.")
        expected = _linear_path_patch(model, ds, sender, receivers, component, clean_cache, corrupted_cache)
        if _close(got, expected):
            continue
        prefix = f"for sender {sender} -> receivers {receivers} through {component!r}: "
        for other in "qkv":
            if other != component and _close(got, _linear_path_patch(model, ds, sender, receivers, other,
                                                                     clean_cache, corrupted_cache)):
                raise CheckFailed(prefix + f"your result matches patching the receivers' {other!r} instead of "
                                  f"{component!r}. Record and replace `blocks.{{layer}}.attn.hook_{component}`.")
        if _close(got, _linear_path_patch(model, ds, sender, receivers, "qkv", clean_cache, corrupted_cache)):
            raise CheckFailed(prefix + "your result matches patching the receivers' whole output (their z, which "
                              "depends on their queries, keys and values together). Path patching into a "
                              f"receiver's {component!r} replaces only that input, `hook_{component}`.")
        if _close(got, _unfrozen_path_patch(model, ds, sender, receivers, component, corrupted_cache)):
            raise CheckFailed(prefix + "your result matches a step 2 in which only the sender was patched, so the "
                              "sender's change also reached the receivers through the heads in between. Freeze "
                              "every other head to its clean z in step 2.")
        if _close(got, base):
            raise CheckFailed(prefix + "your result is the clean logit difference: the patch changed nothing. "
                              "Check that step 2 corrupts the sender and that step 3 writes the recorded inputs.")
        expect_close(got, expected, prefix + "the logit difference per prompt", atol=1e-3, rtol=1e-3, hint=(
            "The reference uses linearity: in step 2 the receiver's input changes by exactly (sender's corrupted "
            "- clean output) @ W_Q/W_K/W_V of the receiver head, written into a clean run."))
    passed("path_patch matches the linear route on four paths (q, k and v)")


# --- path_patch_sweep -------------------------------------------------------------------------

def check_path_patch_sweep(fn: Callable, model: Any) -> None:
    """``fn(model, ds, receivers, component, clean_cache, corrupted_cache, ld_clean, ld_corrupted)``
    -> [n_layers, n_heads]: the fraction of the logit difference lost when the path from each
    sender (every head in a layer before the last receiver's) is patched; NaN elsewhere."""
    ds = _mixed_dataset(n=16, seed=8)
    clean_logits, clean_cache, corrupted_cache = _caches(model, ds)
    with torch.no_grad():
        ld_clean = _logit_diff(clean_logits, ds).mean().item()
        ld_corrupted = _logit_diff(model(ds.corrupted_tokens.to(model.cfg.device)), ds).mean().item()
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    receivers, component = [(1, 7), (2, 6)], "q"
    got = call(fn, model, ds, receivers, component, clean_cache, corrupted_cache, ld_clean, ld_corrupted,
               what=f"(receivers {receivers}, component 'q', ld_clean {ld_clean:.2f}, ld_corrupted {ld_corrupted:.2f})")
    expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
    expect_tensor(got, "path_patch_sweep(...)", shape=(n_layers, n_heads), dims="n_layers n_heads", floating=True)
    got = got.detach().float().cpu()
    last = max(l for l, _ in receivers)
    expected = torch.full((n_layers, n_heads), float("nan"))
    for layer in range(last):
        for head in range(n_heads):
            ld = _linear_path_patch(model, ds, (layer, head), receivers, component, clean_cache, corrupted_cache)
            expected[layer, head] = (ld_clean - ld.mean().item()) / (ld_clean - ld_corrupted)
    if not torch.equal(got.isnan(), expected.isnan()):
        raise CheckFailed(
            f"your NaN entries are at {got.isnan().nonzero().tolist()[:4]}...; expected NaN exactly for the heads "
            f"in layers {last} and later (here the last receiver sits in layer {last}): a head there cannot "
            "send anything to the receivers, so it is not a sender.")
    senders = got[:last]
    if torch.allclose(senders, 1 - expected[:last], atol=2e-3):
        raise CheckFailed("your numbers are 1 minus the expected ones: you returned the normalised metric "
                          "(1 = clean behaviour). Return the fraction *lost*: (ld_clean - ld) / "
                          "(ld_clean - ld_corrupted), 0 when the path does not matter.")
    if torch.allclose(senders, expected[:last] * (ld_corrupted - ld_clean), atol=2e-3, rtol=1e-3):
        raise CheckFailed("your numbers match the change of the logit difference (patched - clean), not "
                          "normalised. Divide the loss (ld_clean - ld) by ld_clean - ld_corrupted.")
    expect_close(senders, expected[:last], "the fraction lost per sender", atol=2e-3, rtol=1e-3, hint=(
        "For every head in a layer before the last receiver's: path_patch(...) with that head as the sender, "
        "the mean over prompts, then (ld_clean - ld) / (ld_clean - ld_corrupted)."))
    passed("path_patch_sweep matches the linear route for every sender")
