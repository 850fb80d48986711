"""Scoring and analysing IOI models: logit difference, accuracy, per-head summaries and
mean ablation (per prompt layout).

Used by the ``ioi-toy`` training run (its metrics), the model card and the tests. Works on any
TransformerLens-style model whose vocabulary is :data:`interpbook.datasets.ioi.VOCAB`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interpbook.datasets.ioi import NAME_IDS, IOIDataset, make_ioi_dataset


def final_logits(
    model, tokens: Int[Tensor, "batch pos"], end: Int[Tensor, " batch"]
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at each prompt's END position, shape [batch, d_vocab]."""
    logits = model(tokens.to(model.cfg.device))
    return logits[torch.arange(len(end)), end.to(logits.device)]


@torch.no_grad()
def logit_diff(model, ds: IOIDataset, corrupted: bool = False,
               fwd_hooks: Sequence[tuple[Any, Any]] = ()) -> Float[Tensor, " batch"]:
    """Per-prompt logit(IO) - logit(S) at END (on the ABC prompts if ``corrupted``), with
    ``fwd_hooks`` attached for this one forward pass."""
    toks = (ds.corrupted_tokens if corrupted else ds.tokens).to(model.cfg.device)
    logits = model.run_with_hooks(toks, fwd_hooks=list(fwd_hooks)) if fwd_hooks else model(toks)
    lg = logits[torch.arange(len(ds), device=logits.device), ds.end.to(logits.device)].float().cpu()
    idx = torch.arange(len(ds))
    return lg[idx, ds.io_tok] - lg[idx, ds.s_tok]


@torch.no_grad()
def direct_effect_split(model, ds: IOIDataset, layer: int, head: int) -> tuple[float, float]:
    """(IO up, S down): the mean direct effect of head ``layer.head``'s END output on the IO's
    logit and (negated) on the subject's, each measured against the average name's logit, so a
    head that raised every name alike counts as neither."""
    name = f"blocks.{layer}.attn.hook_z"
    _, cache = model.run_with_cache(ds.tokens.to(model.cfg.device), names_filter=lambda n: n == name)
    b = torch.arange(len(ds))
    out = (cache[name][b, ds.end, head] @ model.W_O[layer, head]).float().cpu()  # [batch, d_model]
    w_u = model.W_U.float().cpu()
    w = w_u - w_u[:, NAME_IDS].mean(1, keepdim=True)
    io_up = (out * w[:, ds.io_tok].T).sum(-1).mean().item()
    s_down = -(out * w[:, ds.s_tok].T).sum(-1).mean().item()
    return io_up, s_down


@torch.no_grad()
def accuracy(model, ds: IOIDataset) -> float:
    """Fraction of prompts where IO is the top prediction over the whole vocabulary."""
    lg = final_logits(model, ds.tokens, ds.end).float().cpu()
    return float((lg.argmax(-1) == ds.io_tok).float().mean())


def _head_cache(model, ds: IOIDataset):
    names = lambda n: n.endswith("hook_pattern") or n.endswith("hook_z")  # noqa: E731
    _, cache = model.run_with_cache(ds.tokens.to(model.cfg.device), names_filter=names)
    return cache


@torch.no_grad()
def head_summary(model, ds: IOIDataset, ablation: bool = True) -> dict[str, torch.Tensor]:
    """Per-head statistics on ``ds``, each a [n_layers, n_heads] tensor.

    * ``end_to_io`` / ``end_to_s1`` / ``end_to_s2``: mean attention from END to IO, S1, S2;
    * ``s2_to_s1``: mean attention from S2 to S1 (duplicate-token behaviour);
    * ``s2_to_s1_next``: attention from S2 to the token after S1 (induction behaviour);
    * ``dla``: direct logit attribution of the head's END output to logit(IO) - logit(S)
      (exact: the model has no final LayerNorm);
    * ``ablation_drop``: fraction of the mean logit difference lost when the head's output
      (``hook_z``) is replaced by its mean over prompts of the same layout (one forward pass
      per head; skipped, left at zero, when ``ablation`` is False).
    """
    L, H = model.cfg.n_layers, model.cfg.n_heads
    cache = _head_cache(model, ds)
    b = torch.arange(len(ds))
    out: dict[str, torch.Tensor] = {k: torch.zeros(L, H) for k in (
        "end_to_io", "end_to_s1", "end_to_s2", "s2_to_s1", "s2_to_s1_next", "dla", "ablation_drop")}
    direction = (model.W_U[:, ds.io_tok] - model.W_U[:, ds.s_tok]).T.float().cpu()  # [batch, d_model]
    for layer in range(L):
        pat = cache[f"blocks.{layer}.attn.hook_pattern"].float().cpu()  # [batch, head, q, k]
        z = cache[f"blocks.{layer}.attn.hook_z"].float().cpu()  # [batch, pos, head, d_head]
        out["end_to_io"][layer] = pat[b, :, ds.end, ds.io_pos].mean(0)
        out["end_to_s1"][layer] = pat[b, :, ds.end, ds.s1_pos].mean(0)
        out["end_to_s2"][layer] = pat[b, :, ds.end, ds.s2_pos].mean(0)
        out["s2_to_s1"][layer] = pat[b, :, ds.s2_pos, ds.s1_pos].mean(0)
        out["s2_to_s1_next"][layer] = pat[b, :, ds.s2_pos, ds.s1_pos + 1].mean(0)
        w_o = model.W_O[layer].float().cpu()  # [head, d_head, d_model]
        head_out = torch.einsum("bhd,hdm->bhm", z[b, ds.end], w_o)
        out["dla"][layer] = torch.einsum("bhm,bm->bh", head_out, direction).mean(0)
    if not ablation:
        return out
    base = logit_diff(model, ds).mean()
    for layer in range(L):
        for head in range(H):
            ld = ablated_logit_diff(model, ds, [(layer, head)]).mean()
            out["ablation_drop"][layer, head] = float((base - ld) / base)
    return out


def _mean_by_template(z: Float[Tensor, "batch ..."], templates: Sequence[int]) -> Float[Tensor, "batch ..."]:
    """Replace each prompt's activation by the mean over prompts with the same id in
    ``templates`` (callers pass :attr:`IOIDataset.layout`: same template and verb phrase)."""
    t = torch.tensor(templates)
    out = z.clone()
    for tid in t.unique():
        m = t == tid
        out[m] = z[m].mean(0, keepdim=True)
    return out


def _mean_ablation_hooks(ds: IOIDataset, heads: Sequence[tuple[int, int]]) -> list[tuple[str, Any]]:
    """Forward hooks on ``hook_z`` that replace each head in ``heads`` by its mean over prompts
    of the same template."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)

    def make_hook(hs):
        def hook(z, hook):
            z = z.clone()
            for h in hs:
                z[:, :, h] = _mean_by_template(z[:, :, h], ds.layout)
            return z
        return hook

    return [(f"blocks.{layer}.attn.hook_z", make_hook(hs)) for layer, hs in by_layer.items()]


@torch.no_grad()
def ablated_logit_diff(model, ds: IOIDataset, heads: Sequence[tuple[int, int]]) -> Float[Tensor, " batch"]:
    """Logit difference per prompt with the heads ``(layer, head)`` mean-ablated (per template)."""
    return logit_diff(model, ds, fwd_hooks=_mean_ablation_hooks(ds, heads))


@torch.no_grad()
def attention_under_ablation(model, ds: IOIDataset, heads: Sequence[tuple[int, int]],
                             target: tuple[int, int]) -> dict[str, float]:
    """Mean attention of head ``target`` from END to IO / S1 / S2 while ``heads`` are
    mean-ablated: shows whether the ablated heads steer ``target``'s attention."""
    store: dict[str, torch.Tensor] = {}

    def grab(p, hook):
        store["p"] = p.detach().float().cpu()

    hooks = _mean_ablation_hooks(ds, heads)
    hooks.append((f"blocks.{target[0]}.attn.hook_pattern", grab))
    model.run_with_hooks(ds.tokens.to(model.cfg.device), fwd_hooks=hooks)
    p = store["p"][:, target[1]]
    b = torch.arange(len(ds))
    return {
        "io": float(p[b, ds.end, ds.io_pos].mean()),
        "s1": float(p[b, ds.end, ds.s1_pos].mean()),
        "s2": float(p[b, ds.end, ds.s2_pos].mean()),
    }


def evaluate(model, n: int = 1000, seed: int = 1) -> dict[str, Any]:
    """Held-out metrics: accuracy and logit diff per order, ABC logit diff."""
    ds = make_ioi_dataset(n, split="heldout", seed=seed)
    res: dict[str, Any] = {}
    for order in ("ABBA", "BABA"):
        sub = ds.by_order(order)
        res[f"heldout_accuracy_{order}"] = accuracy(model, sub)
        res[f"heldout_logit_diff_{order}"] = float(logit_diff(model, sub).mean())
    res["heldout_accuracy"] = accuracy(model, ds)
    res["heldout_logit_diff"] = float(logit_diff(model, ds).mean())
    res["abc_logit_diff"] = float(logit_diff(model, ds, corrupted=True).mean())
    dv = make_ioi_dataset(n, split="heldout", seed=seed, varied_actions=True)
    res["heldout_accuracy_varied_actions"] = accuracy(model, dv)
    res["heldout_logit_diff_varied_actions"] = float(logit_diff(model, dv).mean())
    tr = make_ioi_dataset(n, split="train", seed=seed + 100)
    res["train_pairs_accuracy"] = accuracy(model, tr)
    return res


def circuit_summary(model, n: int = 400, seed: int = 2) -> dict[str, Any]:
    """A compact description of which heads do what (stored per variant in metrics.json)."""
    ds = make_ioi_dataset(n, split="heldout", seed=seed)
    hs = head_summary(model, ds)
    H = model.cfg.n_heads

    def top(key, k=3, largest=True):
        v = hs[key].flatten()
        idx = v.topk(k, largest=largest).indices.tolist()
        return [[f"{i // H}.{i % H}", round(float(v[i]), 3)] for i in idx]

    return {
        "top_end_to_io": top("end_to_io"),
        "top_end_to_s2": top("end_to_s2"),
        "top_s2_to_s1": top("s2_to_s1"),
        "top_dla": top("dla"),
        "most_negative_dla": top("dla", largest=False),
        "top_ablation_drop": top("ablation_drop"),
        "per_head": {k: [[round(float(x), 3) for x in row] for row in v] for k, v in hs.items()},
    }
