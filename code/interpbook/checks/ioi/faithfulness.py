"""Checks for section 4, "Is it the circuit? Faithfulness and completeness"
(book/chapters/ioi/04-faithfulness.md).

The layout-mean and hook checks use hand-made tensors whose group means are known by
construction. The circuit checks run ``ioi-toy`` on a small dataset of two templates of
different lengths (two layouts, right padding) and compare with answers known without the
learner's route:

* a circuit of every head is the model itself (no head is ablated);
* a circuit of no head is the model with every head mean-ablated, computed by the package's
  own implementation, :func:`interpbook.zoo.ioi_analysis.ablated_logit_diff`;
* ablating heads of the *last* layer changes nothing but those heads' output, and the model has
  no LayerNorm, so the logit difference then moves by exactly (mean z - z) @ W_O projected on
  W_U[:, IO] - W_U[:, S]: a route that needs the clean run's cache and no hook at all;
* with no hook, direct logit attribution must match the package's ``head_summary``; with hooks,
  the heads' attributions must move by exactly as much as the logit difference does (the
  embeddings and biases do not change when a head is ablated).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from interpbook.datasets.ioi import IOIDataset, make_ioi_dataset
from interpbook.zoo import ioi_analysis

__all__ = [
    "check_mean_by_layout",
    "check_mean_ablate_heads_hook",
    "check_circuit_logit_diff",
    "check_knockout_logit_diffs",
    "check_head_dla_with_hooks",
]


# --- mean_by_layout ---------------------------------------------------------------------------

# Five prompts in two layouts: 7 (prompts 0, 2, 3) and 3 (prompts 1, 4).
_LAYOUT = [7, 3, 7, 7, 3]
_SCALE = torch.tensor([1.0, 10.0, 2.0, 6.0, 20.0])
_GROUP_SCALE = torch.tensor([3.0, 15.0, 3.0, 3.0, 15.0])  # (1 + 2 + 6) / 3 and (10 + 20) / 2


def _hand_made(scale: torch.Tensor, pos: int = 3, width: int = 2) -> torch.Tensor:
    """z[i, p, k] = scale[i] * (p + 1) + k: its mean over prompts i of a group is the same
    formula with the group's mean scale, and it varies along the position axis."""
    p = torch.arange(pos, dtype=torch.float32)[None, :, None]
    k = torch.arange(width, dtype=torch.float32)[None, None, :]
    return scale[:, None, None] * (p + 1) + k


def _groups(layout: Sequence[int]) -> list[list[int]]:
    out: dict[int, list[int]] = {}
    for i, t in enumerate(layout):
        out.setdefault(int(t), []).append(i)
    return list(out.values())


def _diagnose_mean(out: torch.Tensor, z: torch.Tensor, layout: Sequence[int], what: str) -> None:
    """Name the usual slips of a layout mean, given the learner's ``out`` for input ``z``."""
    if torch.allclose(out, z.mean(0, keepdim=True).expand_as(z), atol=1e-5):
        raise CheckFailed(
            f"{what}: every prompt got the mean over the *whole batch*. Prompts with different layouts "
            "have different words at the same position, so average only over the prompts whose layout id "
            "equals this prompt's (a boolean mask `ids == value` for each distinct value)."
        )
    if z.ndim >= 3 and torch.allclose(out, z.mean(1, keepdim=True).expand_as(z), atol=1e-5):
        raise CheckFailed(
            f"{what}: you averaged over axis 1, the position axis. Average over prompts (axis 0), within "
            "each layout, and keep every position as it is."
        )
    if z.ndim >= 3 and torch.allclose(out, z.mean((0, 1), keepdim=True).expand_as(z), atol=1e-5):
        raise CheckFailed(f"{what}: you averaged over the batch *and* the position axis. Average over prompts only.")


def check_mean_by_layout(fn: Callable) -> None:
    """``fn(z, layout)`` replaces each prompt's row by the mean over prompts of the same layout."""
    z = _hand_made(_SCALE)
    original = z.clone()
    out = call(fn, z.clone(), list(_LAYOUT), what=f"(z [5, 3, 2], layout {_LAYOUT})")
    expect_tensor(out, "mean_by_layout(z, layout)", shape=z.shape, dims="batch pos d", floating=True)
    out = out.detach().float().cpu()
    _diagnose_mean(out, original, _LAYOUT, f"with layout {_LAYOUT}")
    expect_close(out, _hand_made(_GROUP_SCALE), f"mean_by_layout on the hand-made z (layout {_LAYOUT})", hint=(
        "Prompts 0, 2 and 3 share layout 7 and prompts 1 and 4 share layout 3: each row should be replaced "
        "by the mean of the rows of its group, e.g. row 0 by (z[0] + z[2] + z[3]) / 3."))
    # A [batch, pos, head, d_head] tensor with a singleton layout: invariants that pin the answer.
    g = torch.Generator().manual_seed(3)
    z4 = torch.randn(6, 4, 3, 2, generator=g)
    layout = [5, 9, 5, 2, 9, 5]
    out = call(fn, z4.clone(), list(layout), what=f"(z [6, 4, 3, 2] = [batch pos head d_head], layout {layout})")
    expect_tensor(out, "mean_by_layout(z, layout)", shape=z4.shape, dims="batch pos head d_head")
    out = out.detach().float().cpu()
    _diagnose_mean(out, z4, layout, f"with layout {layout}")
    for members in _groups(layout):
        expect_close(out[members], z4[members].mean(0, keepdim=True).expand(len(members), *z4.shape[1:]),
                     f"rows {members} (layout {layout[members[0]]})", atol=1e-5, hint=(
                         "Every prompt of a layout group gets the same values, the group's mean; a prompt alone "
                         "in its layout (here prompt 3) keeps its own values."))
    passed("mean_by_layout averages within each layout, at every position")


# --- mean_ablate_heads_hook -------------------------------------------------------------------

def check_mean_ablate_heads_hook(fn: Callable) -> None:
    """``fn(z, hook, heads, layout)`` replaces ``z[:, :, h]`` for h in ``heads`` by its mean over
    prompts of the same layout, and leaves the other heads alone."""
    g = torch.Generator().manual_seed(0)
    batch, n_pos, n_heads, d_head = 4, 5, 4, 2
    z0 = torch.randn(batch, n_pos, n_heads, d_head, generator=g)
    layout = [0, 1, 0, 1]  # prompts 0 and 2 share a layout, so do 1 and 3
    partner = [2, 3, 0, 1]
    for heads in ([1, 3], [0], []):
        out = call(fn, z0.clone(), FakeHook(2), list(heads), list(layout),
                   what=f"(z [4, 5, 4, 2] = [batch pos head d_head], heads={heads}, layout={layout})")
        if out is None:
            raise CheckFailed("your hook returned None. Return the edited z (a hook's return value replaces the "
                              "activation in the forward pass).")
        expect_tensor(out, "the hook's output", shape=z0.shape, dims="batch pos head d_head")
        out = out.detach().float().cpu()
        keep = [h for h in range(n_heads) if h not in heads]
        if heads:
            wrong_axis = z0.clone()
            wrong_axis[:, heads] = (z0[:, heads] + z0[partner][:, heads]) / 2
            if torch.allclose(out, wrong_axis, atol=1e-5):
                raise CheckFailed(
                    f"with heads={heads} your hook averaged z[:, {heads}] (positions {heads}) instead of "
                    f"z[:, :, {heads}] (heads {heads}). z is [batch, pos, head, d_head]: the head axis is the third one."
                )
        if not torch.allclose(out[:, :, keep], z0[:, :, keep]):
            changed = [h for h in keep if not torch.allclose(out[:, :, h], z0[:, :, h])]
            if not heads:
                raise CheckFailed(f"with heads=[] your hook still changed heads {changed}. Only the heads listed in "
                                  "`heads` are ablated; with an empty list z must come back unchanged.")
            raise CheckFailed(f"with heads={heads} your hook also changed heads {changed}, which should be left "
                              "exactly as they were. Ablate only z[:, :, heads].")
        expected = (z0[:, :, heads] + z0[partner][:, :, heads]) / 2
        if heads and torch.allclose(out[:, :, heads], z0[:, :, heads].mean(0, keepdim=True).expand_as(expected)):
            raise CheckFailed(f"with heads={heads}: you replaced the heads by their mean over the whole batch. "
                              "Average only over prompts with the same layout (use your mean_by_layout).")
        if heads and torch.allclose(out[:, :, heads], torch.zeros_like(expected)):
            raise CheckFailed(f"with heads={heads}: the heads were set to zero. This is mean-ablation: replace "
                              "them by their mean over prompts of the same layout.")
        expect_close(out[:, :, heads], expected, f"the ablated heads {heads}", atol=1e-5, hint=(
            "Prompts 0 and 2 share a layout, and so do 1 and 3: each ablated head's z at every position should "
            "become the average of the two prompts of its layout."))
    passed("mean_ablate_heads_hook mean-ablates exactly the listed heads, per layout")


# --- shared: a small two-layout dataset and independent routes --------------------------------

def _check_dataset() -> IOIDataset:
    """24 held-out prompts from two templates of different lengths: two layouts, right-padded."""
    return make_ioi_dataset(24, split="heldout", seed=11, templates=[4, 5])


def _all_heads(model: Any) -> list[tuple[int, int]]:
    return [(layer, h) for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


def _as_batch(value: Any, ds: IOIDataset, what: str) -> torch.Tensor:
    expect_tensor(value, what, shape=(len(ds),), dims="batch", floating=True)
    return value.detach().float().cpu()


def _replace_hooks(model: Any, heads: Sequence[tuple[int, int]], how: str, layout: Sequence[int]) -> list:
    """Hooks that set ``heads`` to zero (``how="zero"``) or to their mean over the whole batch
    (``how="batch"``), the two usual slips, to recognise them; or to their mean over prompts of
    the same layout (``how="layout"``)."""
    by_layer: dict[int, list[int]] = {}
    for layer, h in heads:
        by_layer.setdefault(layer, []).append(h)

    def make(hs):
        def hook(z, hook):
            z = z.clone()
            if how == "zero":
                z[:, :, hs] = 0.0
            elif how == "batch":
                z[:, :, hs] = z[:, :, hs].mean(0, keepdim=True)
            else:  # "layout": the right answer, for hooks handed to the learner's function
                for h in hs:
                    for members in _groups(layout):
                        z[members, :, h] = z[members, :, h].mean(0, keepdim=True)
            return z
        return hook

    return [(f"blocks.{layer}.attn.hook_z", make(hs)) for layer, hs in by_layer.items()]


@torch.no_grad()
def _last_layer_route(model: Any, ds: IOIDataset, heads: Sequence[int]) -> torch.Tensor:
    """Logit difference with last-layer ``heads`` mean-ablated (per layout), computed from the
    clean cache alone: nothing reads the last layer's heads but the unembedding, and there is no
    LayerNorm, so ablating them adds (mean z - z) @ W_O to the END residual stream."""
    last = model.cfg.n_layers - 1
    name = f"blocks.{last}.attn.hook_z"
    logits, cache = model.run_with_cache(ds.tokens.to(model.cfg.device), names_filter=lambda n: n == name)
    z = cache[name].float().cpu()  # [batch, pos, head, d_head]
    lg = logits[torch.arange(len(ds), device=logits.device), ds.end.to(logits.device)].float().cpu()
    b = torch.arange(len(ds))
    ld = lg[b, ds.io_tok] - lg[b, ds.s_tok]
    means = torch.empty_like(z)
    for members in _groups(ds.layout):
        means[members] = z[members].mean(0, keepdim=True)
    w_o = model.W_O[last].detach().float().cpu()  # [head, d_head, d_model]
    w_u = model.W_U.detach().float().cpu()
    direction = (w_u[:, ds.io_tok] - w_u[:, ds.s_tok]).T  # [batch, d_model]
    for h in heads:
        delta = (means[b, ds.end, h] - z[b, ds.end, h]) @ w_o[h]  # [batch, d_model]
        ld = ld + (delta * direction).sum(-1)
    return ld


# --- circuit_logit_diff -----------------------------------------------------------------------

def check_circuit_logit_diff(fn: Callable, model: Any) -> None:
    """``fn(model, ds, circuit)`` -> [batch]: the logit difference with every head outside
    ``circuit`` mean-ablated (means over prompts of the same layout)."""
    ds = _check_dataset()
    all_heads = _all_heads(model)
    last = model.cfg.n_layers - 1
    clean = ioi_analysis.logit_diff(model, ds)
    all_ablated = ioi_analysis.ablated_logit_diff(model, ds, all_heads)
    what = "(24 prompts of two templates of different lengths, so two layouts)"

    got = _as_batch(call(fn, model, ds, list(all_heads), what=what + ", circuit = every head"), ds,
                    "circuit_logit_diff(model, ds, every head)")
    expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
    if not torch.allclose(got, clean, atol=1e-3) and torch.allclose(got, all_ablated, atol=1e-2):
        raise CheckFailed(
            "with every head in the circuit you returned the logit difference of a model with every head "
            "ablated: you ablated the circuit instead of its complement. Ablate the heads that are NOT in "
            "`circuit`; a circuit of every head is the model itself."
        )
    expect_close(got, clean, "circuit_logit_diff with every head in the circuit", atol=1e-3, hint=(
        "If every head is in the circuit nothing is ablated, so the result is the model's own per-prompt "
        "logit difference at END (check that you read the logits at ds.end, not at position -1)."))

    got = _as_batch(call(fn, model, ds, [], what=what + ", circuit = []"), ds, "circuit_logit_diff(model, ds, [])")
    expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
    if not torch.allclose(got, all_ablated, atol=1e-2):
        if torch.allclose(got, clean, atol=1e-3):
            raise CheckFailed("with an empty circuit you returned the clean model's logit difference: nothing was "
                              "ablated. With circuit = [] every head must be mean-ablated.")
        if torch.allclose(got, ioi_analysis.logit_diff(model, ds, fwd_hooks=_replace_hooks(model, all_heads, "zero", ds.layout)), atol=1e-2):
            raise CheckFailed(
                "your numbers match zero-ablation: you set the heads outside the circuit to zero. Replace them by "
                "their mean over prompts of the same layout instead (zero is a value these heads never take)."
            )
        if torch.allclose(got, ioi_analysis.logit_diff(model, ds, fwd_hooks=_replace_hooks(model, all_heads, "batch", ds.layout)), atol=1e-2):
            raise CheckFailed(
                "your numbers match ablation by the mean over the whole batch. This dataset has two templates "
                "of different lengths, so take the mean over prompts with the same `ds.layout` only."
            )
    expect_close(got, all_ablated, "circuit_logit_diff with an empty circuit", atol=1e-2, hint=(
        "With circuit = [] every head of every layer is mean-ablated (per layout); the package's "
        "interpbook.zoo.ioi_analysis.ablated_logit_diff(model, ds, every head) gives the same numbers."))

    removed = [1, model.cfg.n_heads - 2]
    circuit = [x for x in all_heads if x not in [(last, h) for h in removed]]
    got = _as_batch(call(fn, model, ds, circuit, what=what + f", circuit = every head but {last}.{removed[0]} and "
                         f"{last}.{removed[1]}"), ds, "circuit_logit_diff(...)")
    expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
    expect_close(got, _last_layer_route(model, ds, removed),
                 f"circuit_logit_diff with heads {last}.{removed[0]} and {last}.{removed[1]} outside the circuit",
                 atol=1e-2, hint=(
                     "Only those two last-layer heads should be mean-ablated; the expected numbers come from the "
                     "clean run, by adding (mean z - z) @ W_O of the two heads to the END residual stream."))
    passed("circuit_logit_diff keeps the circuit and mean-ablates everything else, per layout")


# --- knockout_logit_diffs ---------------------------------------------------------------------

def check_knockout_logit_diffs(fn: Callable, model: Any) -> None:
    """``fn(model, ds, circuit, knocked)`` -> (model without ``knocked``, circuit without
    ``knocked``), both [batch]."""
    ds = _check_dataset()
    all_heads = _all_heads(model)
    last = model.cfg.n_layers - 1
    circuit = [(0, h) for h in range(model.cfg.n_heads)] + [(last, 0), (last, 1), (last, 2)]
    outside = [x for x in all_heads if x not in circuit]
    cases = [
        ([], "nothing knocked out"),
        ([(last, 1), (last, 2)], f"knocked = [{last}.1, {last}.2], inside the circuit"),
        ([(0, 3), (1, 5)], "knocked = [0.3, 1.5]: 0.3 is in the circuit, 1.5 is not"),
    ]
    for knocked, label in cases:
        out = call(fn, model, ds, list(circuit), list(knocked), what=f"({label})")
        expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise CheckFailed(f"return a tuple (model_without, circuit_without); got {type(out).__name__}.")
        model_minus = _as_batch(out[0], ds, "the model-without-K logit differences")
        circuit_minus = _as_batch(out[1], ds, "the circuit-without-K logit differences")
        expected_model = ioi_analysis.ablated_logit_diff(model, ds, knocked)
        expected_circuit = ioi_analysis.ablated_logit_diff(model, ds, sorted(set(outside) | set(knocked)))
        if torch.allclose(model_minus, expected_circuit, atol=1e-2) \
                and torch.allclose(circuit_minus, expected_model, atol=1e-2):
            raise CheckFailed(f"{label}: the two results are swapped. Return (model without K, circuit without K).")
        expect_close(model_minus, expected_model, f"model without K ({label})", atol=1e-2, hint=(
            "The model without K mean-ablates only the knocked-out heads: a 'circuit' of every head except K."))
        if knocked and torch.allclose(circuit_minus, ioi_analysis.ablated_logit_diff(model, ds, outside), atol=1e-2):
            raise CheckFailed(f"{label}: your circuit-without-K is the circuit's own logit difference; the heads of K "
                              "were not removed from the circuit. Ablate everything outside the circuit *and* K.")
        expect_close(circuit_minus, expected_circuit, f"circuit without K ({label})", atol=1e-2, hint=(
            "The circuit without K keeps only the circuit's heads that are not in K: every head outside the "
            "circuit and every head of K is mean-ablated. A head of K outside the circuit is ablated anyway."))
    passed("knockout_logit_diffs removes K from the model and from the circuit")


# --- head_dla_with_hooks ----------------------------------------------------------------------

def check_head_dla_with_hooks(fn: Callable, model: Any) -> None:
    """``fn(model, ds, fwd_hooks)`` -> [n_layers, n_heads]: each head's mean direct contribution
    to logit(IO) - logit(S) at END, in a forward pass with ``fwd_hooks`` attached."""
    ds = _check_dataset()
    shape = (model.cfg.n_layers, model.cfg.n_heads)
    what = "(24 prompts of two templates of different lengths)"
    plain = call(fn, model, ds, [], what=what + ", no hooks")
    expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
    expect_tensor(plain, "head_dla_with_hooks(model, ds, [])", shape=shape, dims="n_layers n_heads", floating=True)
    plain = plain.detach().float().cpu()
    reference = ioi_analysis.head_summary(model, ds, ablation=False)["dla"]
    expect_close(plain, reference, "head_dla_with_hooks with no hooks", atol=2e-3, rtol=1e-3, hint=(
        "Take each head's z at each prompt's END position (ds.end: the prompts have different lengths, so not "
        "position -1), multiply by that head's W_O, project on that prompt's own W_U[:, IO] - W_U[:, S] and "
        "average over prompts."))

    last = model.cfg.n_layers - 1
    ablated = [(0, model.cfg.n_heads - 2), (last, model.cfg.n_heads - 3)]
    hooks = _replace_hooks(model, ablated, "layout", ds.layout)
    with_hooks = call(fn, model, ds, hooks, what=what + f", hooks mean-ablating heads {ablated}")
    expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
    expect_tensor(with_hooks, "head_dla_with_hooks(model, ds, hooks)", shape=shape, dims="n_layers n_heads")
    with_hooks = with_hooks.detach().float().cpu()
    ld_change = (ioi_analysis.ablated_logit_diff(model, ds, ablated).mean()
                 - ioi_analysis.logit_diff(model, ds).mean()).item()
    if torch.allclose(with_hooks, plain, atol=1e-4) and abs(ld_change) > 0.1:
        raise CheckFailed(
            f"with hooks that mean-ablate heads {ablated} you returned the same attributions as with no hooks, "
            f"although the logit difference changes by {ld_change:.2f}. Run the forward pass that you cache "
            "*with* the hooks attached (`with model.hooks(fwd_hooks=...):` around `run_with_cache`)."
        )
    got_change = (with_hooks.sum() - plain.sum()).item()
    if abs(got_change - ld_change) > 2e-2:
        raise CheckFailed(
            f"with heads {ablated} mean-ablated, the heads' attributions should change in total by exactly as much "
            f"as the mean logit difference does ({ld_change:.3f}: the embeddings and biases do not change, and the "
            f"model has no LayerNorm); yours changed by {got_change:.3f}. Cache z in the same hooked run, after the "
            "ablation hooks have edited it."
        )
    passed("head_dla_with_hooks matches the package's DLA, and follows the hooks")
