"""Checks for section 2, "Activation patching" (book/chapters/ioi/02-activation-patching.md).

The metric and hook checks use small hand-made tensors whose answer can be worked out on paper.
The patching checks run the learner's function on a few one-layout IOI prompts and compare it

* with invariants that hold by construction: an ABC pair differs only in the S2 token, so at
  layer 0's ``hook_resid_pre`` only the S2 position differs (patching it restores the clean run
  exactly, patching any other position changes nothing), and every position before S2 is
  identical in both runs at every layer (attention is causal);
* with the same patch done by an independent route: the residual stream is patched at the
  *previous* block's ``hook_resid_post`` (or at ``hook_embed`` for layer 0); a head's output is
  patched by adding ``(z_clean - z_corrupted) @ W_O`` for that head to the layer's
  ``hook_attn_out``; a head's pattern is patched by recomputing its ``z`` as the clean pattern
  times the corrupted run's values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from interpbook.checks import (
    CheckFailed,
    FakeHook,
    call,
    expect_close,
    expect_no_leftover_hooks,
    expect_tensor,
    passed,
)
from interpbook.datasets.ioi import make_ioi_dataset

__all__ = [
    "check_normalised_patching_metric",
    "check_patch_residual_hook",
    "check_patch_residual_stream",
    "check_patch_head_outputs",
    "check_patch_head_patterns",
]


# --- normalised_patching_metric ---------------------------------------------------------------

def check_normalised_patching_metric(fn: Callable) -> None:
    """``fn(logit_diff, clean_ld, corrupted_ld)``: (ld - corrupted) / (clean - corrupted), elementwise."""
    # Worked by hand: clean 10, corrupted 2, so 6 is half-way and 14 overshoots the clean run.
    ld = torch.tensor([2.0, 10.0, 6.0, 14.0, -2.0])
    original = ld.clone()
    out = call(fn, ld, 10.0, 2.0, what="(clean_ld=10.0, corrupted_ld=2.0)")
    expect_tensor(out, "normalised_patching_metric(ld, 10.0, 2.0)", shape=(5,), dims="batch", floating=True)
    if not torch.equal(ld, original):
        raise CheckFailed("your function changed the logit_diff tensor it was given (in place). Compute a new "
                          "tensor, e.g. `(logit_diff - corrupted_ld) / (...)`, without `-=` or `/=` on the input.")
    out = out.detach().float().cpu()
    expected = torch.tensor([0.0, 1.0, 0.5, 1.5, -0.5])
    if torch.allclose(out, 1 - expected, atol=1e-5):
        raise CheckFailed(
            "you returned 1 for the corrupted logit difference and 0 for the clean one: the endpoints are swapped. "
            "The metric should read 1 = clean behaviour, 0 = corrupted behaviour: subtract corrupted_ld, and "
            "divide by clean_ld - corrupted_ld.")
    if torch.allclose(out, ld - 2.0, atol=1e-5):
        raise CheckFailed(
            "with clean_ld=10 and corrupted_ld=2 your function returned logit_diff - corrupted_ld "
            f"({out.tolist()}): the denominator is missing. Divide by clean_ld - corrupted_ld so that the clean "
            "logit difference maps to exactly 1.")
    expect_close(out, expected, "normalised_patching_metric([2, 10, 6, 14, -2], clean_ld=10, corrupted_ld=2)",
                 atol=1e-5, hint=(
                     "Expected [0, 1, 0.5, 1.5, -0.5]: (logit_diff - corrupted_ld) / (clean_ld - corrupted_ld). "
                     "Values outside [0, 1] are allowed: do not clamp."))
    # Tensors in, any shape; and a direction where the corrupted value is the larger one.
    ld = torch.tensor([[3.0, -1.0, 1.0], [5.0, 0.0, -3.0]])
    out = call(fn, ld, torch.tensor(-1.0), torch.tensor(3.0),
               what="(a [2, 3] logit_diff, clean_ld=tensor(-1.), corrupted_ld=tensor(3.))")
    expect_tensor(out, "normalised_patching_metric(ld [2, 3], tensor(-1.), tensor(3.))", shape=(2, 3),
                  floating=True)
    expect_close(out.detach().float().cpu(), torch.tensor([[0.0, 1.0, 0.5], [-0.5, 0.75, 1.5]]),
                 "normalised_patching_metric with clean_ld=-1, corrupted_ld=3", atol=1e-5, hint=(
                     "It should work elementwise on a tensor of any shape, with clean_ld and corrupted_ld given "
                     "as numbers or 0-d tensors, and also when the clean value is the smaller one."))
    passed("normalised_patching_metric maps corrupted to 0 and clean to 1")


# --- patch_residual_hook ----------------------------------------------------------------------

def check_patch_residual_hook(fn: Callable) -> None:
    """``fn(resid, hook, pos, clean_resid)`` -> ``resid`` with ``[:, pos]`` taken from ``clean_resid``."""
    batch, n_pos, d_model = 3, 6, 4
    corrupted = torch.arange(batch * n_pos * d_model, dtype=torch.float32).reshape(batch, n_pos, d_model)
    clean = -(corrupted + 1.0)
    for pos in (2, n_pos - 1, 0):
        resid, clean_arg = corrupted.clone(), clean.clone()
        # Named with the alias TransformerLens 4.x reports for hook_resid_pre: a hook should not need it.
        hook = FakeHook(1, name="blocks.1.hook_in")
        out = call(fn, resid, hook, pos, clean_arg,
                   what=f"(resid and clean_resid of shape [{batch}, {n_pos}, {d_model}], pos={pos})")
        if not torch.equal(clean_arg, clean):
            raise CheckFailed(
                "your hook changed clean_resid: the assignment is the wrong way round. Copy *from* the clean "
                "activation *into* the one flowing through the model: resid[:, pos] = clean_resid[:, pos].")
        if out is None:
            raise CheckFailed("your hook returned None. Return the patched activation (`return resid`), so "
                              "that it replaces the activation for the rest of the forward pass.")
        expect_tensor(out, f"patch_residual_hook(..., pos={pos}, ...)", shape=(batch, n_pos, d_model),
                      dims="batch pos d_model")
        out = out.detach().float().cpu()
        expected = corrupted.clone()
        expected[:, pos] = clean[:, pos]
        if torch.equal(out, expected):
            continue
        if pos + 1 < n_pos and torch.equal(out[:, pos:], clean[:, pos:]) and torch.equal(out[:, :pos], corrupted[:, :pos]):
            raise CheckFailed(
                f"with pos={pos} your hook replaced positions {pos} to {n_pos - 1}, not position {pos} alone: "
                "`resid[:, pos:]` is a slice from pos to the end. Index a single position: resid[:, pos].")
        if pos < batch and torch.equal(out[pos], clean[pos]):
            raise CheckFailed(
                f"your hook replaced sequence {pos} of the batch (the first axis), not position {pos}. The "
                "residual stream is [batch, pos, d_model]: the position is the second axis, resid[:, pos].")
        if torch.equal(out, corrupted):
            raise CheckFailed(f"with pos={pos} your hook returned the activation unchanged. Replace position pos "
                              "of every sequence with the clean value there.")
        expect_close(out, expected, f"the patched activation (pos={pos})", hint=(
            "Only position pos, in every sequence of the batch and every dimension of d_model, should hold "
            "clean_resid's value: resid[:, pos] = clean_resid[:, pos]."))
    passed("patch_residual_hook patches one position of every sequence")


# --- shared set-up for the patching checks ----------------------------------------------------

def _setup(model: Any) -> dict[str, Any]:
    """A few one-layout IOI prompts, their clean cache, corrupted cache and a normalised metric."""
    ds = make_ioi_dataset(8, split="heldout", seed=2024, templates=[0])
    device = model.cfg.device
    tokens, corrupted = ds.tokens.to(device), ds.corrupted_tokens.to(device)
    idx = torch.arange(len(ds), device=device)
    end, io, s = ds.end.to(device), ds.io_tok.to(device), ds.s_tok.to(device)

    def ld(logits: torch.Tensor) -> torch.Tensor:
        last = logits[idx, end]
        return (last[idx, io] - last[idx, s]).float().mean()

    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(tokens)
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted)
    clean_ld, corrupted_ld = ld(clean_logits), ld(corrupted_logits)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return (ld(logits) - corrupted_ld) / (clean_ld - corrupted_ld)

    s2 = int(ds.s2_pos[0])
    assert bool((ds.s2_pos == s2).all()), "the check's prompts should share one layout"
    return dict(ds=ds, tokens=tokens, corrupted=corrupted, clean_cache=clean_cache,
                corrupted_cache=corrupted_cache, metric=metric, s2=s2)


def _patching_call(fn: Callable, model: Any, s: dict[str, Any], name: str, shape: tuple[int, ...],
                   dims: str) -> torch.Tensor:
    got = call(fn, model, s["corrupted"], s["clean_cache"], s["metric"],
               what=f"(8 ABC prompts of one layout, {s['corrupted'].shape[1]} positions, S2 at position {s['s2']})")
    expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
    expect_tensor(got, name, shape=shape, dims=dims, floating=True)
    return got.detach().float().cpu()


# --- patch_residual_stream --------------------------------------------------------------------

@torch.no_grad()
def _reference_resid(model: Any, s: dict[str, Any]) -> torch.Tensor:
    """Patch resid_pre of layer l at one position via a different hook point: the embedding for
    layer 0 (the positional embedding is the same in both runs), the previous block's resid_post
    for later layers."""
    n_layers, n_pos = model.cfg.n_layers, s["corrupted"].shape[1]
    out = torch.zeros(n_layers, n_pos)
    for layer in range(n_layers):
        name = "hook_embed" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"
        clean = s["clean_cache"][name]
        for pos in range(n_pos):
            def hook(act, hook, pos=pos, clean=clean):
                act = act.clone()
                act[:, pos] = clean[:, pos]
                return act
            out[layer, pos] = s["metric"](model.run_with_hooks(s["corrupted"], fwd_hooks=[(name, hook)])).item()
    return out


def check_patch_residual_stream(fn: Callable, model: Any) -> None:
    """``fn(model, corrupted_tokens, clean_cache, metric)`` -> [n_layers, pos]: the metric with the clean
    ``blocks.{l}.hook_resid_pre`` patched into the corrupted run at one position."""
    s = _setup(model)
    n_layers, n_pos, s2 = model.cfg.n_layers, s["corrupted"].shape[1], s["s2"]
    got = _patching_call(fn, model, s, "patch_residual_stream(...)", (n_layers, n_pos), "n_layers pos")
    if got.abs().max() < 1e-4:
        raise CheckFailed(
            "every entry is 0: no patch changed the corrupted run. Patch the clean activations "
            "(clean_cache[f'blocks.{layer}.hook_resid_pre']) into a run on corrupted_tokens, and pass the logits "
            "of that patched run to metric.")
    expected = _reference_resid(model, s)
    if not torch.allclose(got, expected, atol=1e-4, rtol=1e-3) and torch.allclose(got[:-1], expected[1:], atol=1e-4):
        raise CheckFailed(
            "your row l matches the expected row l + 1: you patched each layer's *output* (hook_resid_post), not "
            "the residual stream the layer reads. Patch f'blocks.{layer}.hook_resid_pre': row 0 is then the "
            "embeddings, where only the S2 token differs.")
    one_hot = torch.zeros(n_pos)
    one_hot[s2] = 1.0
    if not torch.allclose(got[0], one_hot, atol=1e-4):
        raise CheckFailed(
            f"row 0 (layer 0's hook_resid_pre, the embeddings) should be exactly 1 at S2 (position {s2}) and 0 "
            f"elsewhere, got {[round(v, 3) for v in got[0].tolist()]}. Only the S2 token differs between a clean "
            "prompt and its ABC version, so patching S2 there makes the whole run clean, and patching any other "
            "position changes nothing. Patch a single position (resid[:, pos], not resid[:, pos:]) of "
            "f'blocks.{layer}.hook_resid_pre', from clean_cache, and return the metric.")
    before = got[:, :s2]
    if before.abs().max() > 1e-4:
        layer, pos = (int(i) for i in torch.unravel_index(before.abs().argmax(), before.shape))
        raise CheckFailed(
            f"patching layer {layer} at position {pos} (before S2, at {s2}) gave {got[layer, pos].item():.3f}, "
            "expected exactly 0: attention is causal, so every position before S2 is identical in the clean and "
            "the corrupted run at every layer. Patch one position at a time (resid[:, pos]).")
    expect_close(got, expected, "the residual-stream patching result", atol=1e-4, rtol=1e-3, hint=(
        "For every layer and position: run corrupted_tokens with a hook on f'blocks.{layer}.hook_resid_pre' that "
        "copies the clean value at that one position, and record metric(logits). Rows are layers, columns "
        "positions."))
    passed("patch_residual_stream: one-hot at layer 0, zero before S2, and matches a patch at another hook point")


# --- patch_head_outputs -----------------------------------------------------------------------

@torch.no_grad()
def _reference_heads(model: Any, s: dict[str, Any]) -> torch.Tensor:
    """Patch head h's output by adding its change (z_clean - z_corrupted) @ W_O[h] to the layer's
    attention output, never touching z."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        dz = s["clean_cache"][f"blocks.{layer}.attn.hook_z"] - s["corrupted_cache"][f"blocks.{layer}.attn.hook_z"]
        w_o = model.W_O[layer]
        for head in range(n_heads):
            delta = dz[:, :, head] @ w_o[head]  # [batch, pos, d_model]

            def hook(attn_out, hook, delta=delta):
                return attn_out + delta.to(attn_out.dtype)
            logits = model.run_with_hooks(s["corrupted"], fwd_hooks=[(f"blocks.{layer}.hook_attn_out", hook)])
            out[layer, head] = s["metric"](logits).item()
    return out


def check_patch_head_outputs(fn: Callable, model: Any) -> None:
    """``fn(model, corrupted_tokens, clean_cache, metric)`` -> [n_layers, n_heads]: each head's clean ``z``
    (all positions) patched into the corrupted run."""
    s = _setup(model)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    got = _patching_call(fn, model, s, "patch_head_outputs(...)", (n_layers, n_heads), "n_layers n_heads")
    if got.abs().max() < 1e-4:
        raise CheckFailed(
            "every entry is 0: no patch changed the corrupted run. If you wrote z[:, head], you patched *position* "
            f"`head` of every head (positions 0 to {n_heads - 1}, all before S2 at {s['s2']}, where both runs are "
            "identical). z is [batch, pos, head, d_head]: patch z[:, :, head] with the clean z of the same layer.")
    expected = _reference_heads(model, s)
    expect_close(got, expected, "the head-patching result", atol=1e-4, rtol=1e-3, hint=(
        "For each (layer, head): run corrupted_tokens with a hook on f'blocks.{layer}.attn.hook_z' that sets "
        "z[:, :, head] (every position; the head axis is the third of [batch, pos, head, d_head]) to "
        "clean_cache[f'blocks.{layer}.attn.hook_z'][:, :, head], and record metric(logits)."))
    passed("patch_head_outputs matches patching each head's output at the attention layer's output")


# --- patch_head_patterns ----------------------------------------------------------------------

@torch.no_grad()
def _reference_patterns(model: Any, s: dict[str, Any]) -> torch.Tensor:
    """Patch head h's pattern by recomputing its z: the clean pattern times the corrupted run's
    values (which a patch in this layer cannot change)."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        pattern = s["clean_cache"][f"blocks.{layer}.attn.hook_pattern"]  # [batch, head, q, k]
        v = s["corrupted_cache"][f"blocks.{layer}.attn.hook_v"]  # [batch, k, head, d_head]
        for head in range(n_heads):
            z_head = torch.einsum("bqk,bkd->bqd", pattern[:, head], v[:, :, head])

            def hook(z, hook, head=head, z_head=z_head):
                z = z.clone()
                z[:, :, head] = z_head.to(z.dtype)
                return z
            logits = model.run_with_hooks(s["corrupted"], fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
            out[layer, head] = s["metric"](logits).item()
    return out


def check_patch_head_patterns(fn: Callable, model: Any) -> None:
    """``fn(model, corrupted_tokens, clean_cache, metric)`` -> [n_layers, n_heads]: each head's clean
    attention pattern patched into the corrupted run."""
    s = _setup(model)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    got = _patching_call(fn, model, s, "patch_head_patterns(...)", (n_layers, n_heads), "n_layers n_heads")
    if got.abs().max() < 1e-4:
        raise CheckFailed(
            "every entry is 0: no patch changed the corrupted run. If you wrote pattern[:, :, head], you patched "
            f"*query position* `head` of every head (queries 0 to {n_heads - 1}, all before S2 at {s['s2']}, where "
            "both runs attend identically). The pattern is [batch, head, query, key]: patch pattern[:, head].")
    expected = _reference_patterns(model, s)
    if not torch.allclose(got, expected, atol=1e-4, rtol=1e-3):
        if torch.allclose(got, _reference_heads(model, s), atol=1e-4, rtol=1e-3):
            raise CheckFailed(
                "your numbers are the head-output patching result: you patched hook_z (the head's whole output), "
                "not its attention pattern. Hook f'blocks.{layer}.attn.hook_pattern' and copy the clean pattern "
                "of that head; the head then mixes the corrupted run's values with the clean weights.")
    expect_close(got, expected, "the pattern-patching result", atol=1e-4, rtol=1e-3, hint=(
        "For each (layer, head): run corrupted_tokens with a hook on f'blocks.{layer}.attn.hook_pattern' that sets "
        "pattern[:, head] (the pattern is [batch, head, query, key]) to the clean pattern of that head, and record "
        "metric(logits)."))
    passed("patch_head_patterns matches recomputing each head's z from the clean pattern and corrupted values")
