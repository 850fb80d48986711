"""Checks for section 2, "Working backwards from the output"
(book/chapters/brackets/02-working-backwards.md).

Every check builds its own tiny inputs whose answer is known by construction: hand-made
unembeddings and LayerNorm weights, synthetic data with a scale planted in it, and hand-made
caches whose components add up to a residual stream the check knows. None of them needs the
model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_float, expect_tensor, passed

__all__ = [
    "check_unbalanced_direction",
    "check_fit_constant_scale",
    "check_component_attributions",
    "check_neuron_attributions",
]


# --- unbalanced_direction ---------------------------------------------------------------------

def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-5):
    """A LayerNorm written out: returns (output, scale)."""
    centred = x - x.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return centred / scale * w + b, scale[..., 0]


def check_unbalanced_direction(fn: Callable) -> None:
    """``fn(W_U, ln_weight)`` -> u [d_model]: logit(unbalanced) - logit(balanced) = (x . u) / scale + const
    for a residual vector x entering the final LayerNorm."""
    # Worked by hand: d = W_U[:, 0] - W_U[:, 1] = (1, -1, 0, -3); w * d = (2, -1, 0, -3), mean -0.5.
    w_u = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [0.0, 3.0]])
    w = torch.tensor([2.0, 1.0, 1.0, 1.0])
    got = call(fn, w_u, w, what="(W_U [4, 2], ln_weight [4], worked by hand)")
    expect_tensor(got, "unbalanced_direction(W_U, ln_weight)", shape=(4,), dims="d_model", floating=True)
    got = got.detach().float().cpu()
    expected = torch.tensor([2.5, -0.5, 0.5, -2.5])
    if torch.allclose(got, -expected, atol=1e-4):
        raise CheckFailed(
            "your direction points the wrong way: it gives logit(balanced) - logit(unbalanced). Column 0 of "
            "W_U is 'unbalanced' and column 1 'balanced'; use W_U[:, 0] - W_U[:, 1].")
    d = w_u[:, 0] - w_u[:, 1]
    if torch.allclose(got, d - d.mean(), atol=1e-4) or torch.allclose(got, d, atol=1e-4):
        raise CheckFailed(
            "your direction ignores the LayerNorm's weight. The LayerNorm multiplies each normalised "
            "coordinate by ln_weight before W_U reads it, so the direction in the stream *before* the LayerNorm "
            "is ln_weight * (W_U[:, 0] - W_U[:, 1]).")
    if torch.allclose(got, w * d, atol=1e-4):
        raise CheckFailed(
            f"your direction is not centred: its entries sum to {got.sum().item():.3g}, not 0. The LayerNorm "
            "subtracts the mean of x first, and (x - mean(x)) . v = x . (v - mean(v)): subtract the mean of "
            "ln_weight * d from it.")
    expect_close(got, expected, "unbalanced_direction on W_U/ln_weight worked by hand", hint=(
        "With d = W_U[:, 0] - W_U[:, 1]: u = ln_weight * d, minus its mean."))
    # Invariant: through a real LayerNorm, (x . u) / scale + b . d is the logit difference.
    g = torch.Generator().manual_seed(3)
    w_u = torch.randn(7, 2, generator=g)
    w = 1 + torch.rand(7, generator=g)
    b = torch.randn(7, generator=g)
    x = torch.randn(10, 7, generator=g) + 2
    got = call(fn, w_u, w, what="(random W_U [7, 2], ln_weight [7])")
    expect_tensor(got, "unbalanced_direction(W_U, ln_weight)", shape=(7,), dims="d_model", floating=True)
    out, scale = _layer_norm(x, w, b)
    logits = out @ w_u
    ld = logits[:, 0] - logits[:, 1]
    d = w_u[:, 0] - w_u[:, 1]
    pred = x @ got.detach().float().cpu() / scale + b @ d
    expect_close(pred, ld, "(x . u) / scale + ln_bias . d, against a real LayerNorm's logit difference",
                 atol=1e-4, hint="Work through LN(x) = w * (x - mean(x)) / scale + b, then logits = LN(x) @ W_U.")
    passed("unbalanced_direction reproduces the logit difference through a real LayerNorm")


# --- fit_constant_scale ---------------------------------------------------------------------

def _scale_data(seed: int = 0, scale: float = 4.0, noise: float = 1.0):
    """resid [batch, 3, d_model], logit_diff [batch], u, const, with known scale and R^2."""
    g = torch.Generator().manual_seed(seed)
    batch, d_model = 60, 5
    u = torch.randn(d_model, generator=g, dtype=torch.float64)
    u = u - u.mean()
    resid = torch.randn(batch, 3, d_model, generator=g, dtype=torch.float64) * 3
    resid[:, 0] += 2 * u  # a non-zero mean projection
    resid[:, 1:] *= 2.5   # other positions: a different spread, so they fit a different scale
    const = 2.0
    p = resid[:, 0] @ u
    # A residual orthogonal to p and to the constant: the least-squares fit cannot use it.
    e = torch.randn(batch, generator=g, dtype=torch.float64)
    basis = torch.linalg.qr(torch.stack([torch.ones(batch, dtype=torch.float64), p], 1)).Q
    e = e - basis @ (basis.T @ e)
    e = e / e.norm() * noise * p.std() / scale * batch ** 0.5 * 0.5
    y = const + p / scale + e
    r2 = 1 - (e ** 2).sum() / ((y - y.mean()) ** 2).sum()
    return resid.float(), y.float(), u.float(), const, float(r2), p, y


def check_fit_constant_scale(fn: Callable) -> None:
    """``fn(resid, logit_diff, u, const)`` -> (scale, r2): one scale s0 for the final LayerNorm at
    position 0, fitted by least squares, and the R^2 of const + (x . u) / s0 against logit_diff."""
    # 1. Exact data: the logit difference is exactly (x . u) / 4 + const.
    resid, y, u, const, _, _, _ = _scale_data(noise=0.0)
    out = call(fn, resid, y, u, const, what="(synthetic data made with scale 4, no noise)")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"fit_constant_scale should return a pair (scale, r2), got {type(out).__name__}.")
    scale, r2 = expect_float(out[0], "scale"), expect_float(out[1], "r2")
    if abs(scale - 0.25) < 1e-3:
        raise CheckFailed("you returned the slope 1/s0 = 0.25, not the scale s0 = 4: the LayerNorm *divides* by "
                          "its scale, so s0 is one over the least-squares coefficient.")
    if abs(scale - 4.0) > 1e-3:
        p_last = resid[:, -1] @ u
        a_last = (p_last * (y - const)).sum() / (p_last ** 2).sum()
        if abs(scale - 1 / a_last.item()) < 1e-3:
            raise CheckFailed("your scale was fitted on the last position. The logits are read at position 0: use "
                              "resid[:, 0].")
        raise CheckFailed(
            f"on data made as logit_diff = const + (x . u) / 4 exactly, your scale is {scale:.4g}, expected 4. "
            "Fit logit_diff - const = a * (resid[:, 0] @ u) by least squares (no intercept) and return 1 / a.")
    if abs(r2 - 1.0) > 1e-4:
        raise CheckFailed(f"on noiseless data the fit is perfect, so R^2 should be 1; yours is {r2:.4g}.")
    # 2. Data with a residual the fit cannot explain: R^2 known by construction.
    resid, y, u, const, r2_true, p, y64 = _scale_data(seed=1, noise=1.0)
    out = call(fn, resid, y, u, const, what="(synthetic data made with scale 4 plus noise)")
    scale, r2 = expect_float(out[0], "scale"), expect_float(out[1], "r2")
    if abs(scale - 4.0) > 1e-3:
        raise CheckFailed(f"with noise orthogonal to x . u the least-squares scale is still exactly 4; yours is "
                          f"{scale:.4g}. Fit on position 0, through the origin after subtracting const.")
    resid_ss = ((y64 - const - p / 4) ** 2).sum()
    uncentred = float(1 - resid_ss / (y64 ** 2).sum())
    if abs(r2 - uncentred) < 1e-3:
        raise CheckFailed(
            f"your R^2 ({r2:.4g}) compares the residuals with the sum of squares of logit_diff around zero; the "
            f"baseline is its mean. R^2 = 1 - sum((y - pred)^2) / sum((y - mean(y))^2) = {r2_true:.4g} here.")
    if abs(r2 - r2_true) > 1e-3:
        raise CheckFailed(
            f"your R^2 is {r2:.4g}; expected {r2_true:.4g}. Predict pred = const + (resid[:, 0] @ u) / scale and "
            "compute 1 - sum((logit_diff - pred)^2) / sum((logit_diff - logit_diff.mean())^2).")
    passed("fit_constant_scale recovers a planted scale and the R^2 of the fit")


# --- component_attributions ----------------------------------------------------------------

def _cache(n_layers: int, n_heads: int, d_head: int, d_model: int, batch: int, pos: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    cache = {"hook_embed": torch.randn(batch, pos, d_model, generator=g),
             "hook_pos_embed": torch.randn(batch, pos, d_model, generator=g),
             "ln_final.hook_scale": 1 + 3 * torch.rand(batch, pos, 1, generator=g)}
    for layer in range(n_layers):
        cache[f"blocks.{layer}.attn.hook_z"] = torch.randn(batch, pos, n_heads, d_head, generator=g)
        cache[f"blocks.{layer}.hook_mlp_out"] = torch.randn(batch, pos, d_model, generator=g)
    w_o = torch.randn(n_layers, n_heads, d_head, d_model, generator=g)
    b_o = torch.randn(n_layers, d_model, generator=g)
    u = torch.randn(d_model, generator=g)
    return cache, w_o, b_o, u - u.mean()


def _attributions(cache, w_o, b_o, u, p):
    """The reference, one component at a time at position p."""
    scale = cache["ln_final.hook_scale"][:, p, 0]
    cols = [cache["hook_embed"][:, p] @ u, cache["hook_pos_embed"][:, p] @ u]
    for layer in range(w_o.shape[0]):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, p]
        for h in range(w_o.shape[1]):
            cols.append((z[:, h] @ w_o[layer, h]) @ u)
        cols.append((b_o[layer] @ u).expand(len(scale)))
        cols.append(cache[f"blocks.{layer}.hook_mlp_out"][:, p] @ u)
    return torch.stack(cols, 1) / scale[:, None]


def check_component_attributions(fn: Callable) -> None:
    """``fn(cache, W_O, b_O, u)`` -> [batch, 2 + n_layers * (n_heads + 2)]: each component's direct
    contribution to the logit difference at position 0, divided by the per-string LayerNorm scale."""
    # Worked by hand: 1 layer, 2 heads, d_head 1, d_model 2, u = (1, -1), scale 2 at position 0.
    cache = {
        "hook_embed": torch.tensor([[[1.0, 0.0], [5.0, 5.0]]]),
        "hook_pos_embed": torch.tensor([[[0.0, 2.0], [1.0, 7.0]]]),
        "blocks.0.attn.hook_z": torch.tensor([[[[1.0], [2.0]], [[4.0], [0.0]]]]),
        "blocks.0.hook_mlp_out": torch.tensor([[[0.0, -1.0], [3.0, 0.0]]]),
        "ln_final.hook_scale": torch.tensor([[[2.0], [10.0]]]),
    }
    w_o = torch.tensor([[[[3.0, 0.0]], [[0.0, 1.0]]]])  # [1 layer, 2 heads, d_head 1, d_model 2]
    b_o = torch.tensor([[0.5, 0.0]])
    u = torch.tensor([1.0, -1.0])
    got = call(fn, cache, w_o, b_o, u, what="(a hand-made cache: 1 string, 2 positions, 1 layer of 2 heads)")
    if isinstance(got, torch.Tensor) and got.ndim == 2 and got.shape[1] == 5:
        raise CheckFailed(f"you returned {got.shape[1]} components for 1 layer of 2 heads; expected 6: embed, "
                          "pos_embed, head 0, head 1, b_O, MLP. Did you leave out the attention bias b_O?")
    expect_tensor(got, "component_attributions(...)", shape=(1, 6), dims="batch n_components", floating=True)
    got = got.detach().float().cpu()
    expected = torch.tensor([[0.5, -1.0, 1.5, -1.0, 0.25, 0.5]])
    if torch.allclose(got, 2 * expected, atol=1e-4):
        raise CheckFailed("your attributions are twice the expected ones, and this string's LayerNorm scale is 2: "
                          "divide each component's projection on u by ln_final.hook_scale at position 0.")
    if torch.allclose(got, _attributions(cache, w_o, b_o, u, -1), atol=1e-4):
        raise CheckFailed("you read the last position. The classifier reads its logits at position 0 ([start]): "
                          "take [:, 0] of every activation.")
    expect_close(got, expected, "component_attributions on the hand-made cache", hint=(
        "Order: embed, pos_embed, then for each layer: head 0, head 1, ..., b_O[layer], MLP. A head's output is "
        "hook_z[:, 0, h] @ W_O[layer, h]; every column is (vector . u) / hook_scale[:, 0]."))
    # Invariant: on a random cache they add up to the stream's projection divided by the scale.
    cache, w_o, b_o, u = _cache(n_layers=2, n_heads=3, d_head=4, d_model=5, batch=6, pos=4, seed=4)
    got = call(fn, cache, w_o, b_o, u, what="(a random cache: 6 strings, 4 positions, 2 layers of 3 heads)")
    expect_tensor(got, "component_attributions(...)", shape=(6, 12), dims="batch n_components", floating=True)
    got = got.detach().float().cpu()
    resid = cache["hook_embed"] + cache["hook_pos_embed"]
    for layer in range(2):
        resid = resid + torch.einsum("bphd,hdm->bpm", cache[f"blocks.{layer}.attn.hook_z"], w_o[layer])
        resid = resid + b_o[layer] + cache[f"blocks.{layer}.hook_mlp_out"]
    total = resid[:, 0] @ u / cache["ln_final.hook_scale"][:, 0, 0]
    expect_close(got.sum(-1), total, "the sum of your attributions over components", atol=1e-3, hint=(
        "They should add up to (resid_post[:, 0] . u) / scale: every term written to the stream at position 0 "
        "(the embeddings, each head, each layer's b_O, each MLP) must appear once."))
    expect_close(got, _attributions(cache, w_o, b_o, u, 0), "component_attributions on a random cache", atol=1e-3,
                 hint="Keep the order embed, pos_embed, then per layer: the heads, b_O, the MLP.")
    passed("component_attributions splits the logit difference exactly, component by component")


# --- neuron_attributions -------------------------------------------------------------------

def check_neuron_attributions(fn: Callable) -> None:
    """``fn(post, W_out, u, scale)`` -> [batch, d_mlp]: each neuron's direct contribution
    post[:, n] * (W_out[n] . u) / scale."""
    post = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 1.0]])   # 2 strings, 3 neurons
    w_out = torch.tensor([[1.0, -1.0], [2.0, 2.0], [0.0, -3.0]])  # neuron n writes row n
    u = torch.tensor([1.0, -1.0])                             # W_out @ u = (2, 0, 3)
    scale = torch.tensor([2.0, 1.0])
    got = call(fn, post, w_out, u, scale, what="(2 strings, 3 neurons, d_model 2, worked by hand)")
    expect_tensor(got, "neuron_attributions(...)", shape=(2, 3), dims="batch d_mlp", floating=True)
    got = got.detach().float().cpu()
    expected = torch.tensor([[1.0, 0.0, 3.0], [0.0, 0.0, 3.0]])
    if torch.allclose(got, post * (w_out @ u), atol=1e-4):
        raise CheckFailed("your contributions are not divided by the LayerNorm scale (string 0 has scale 2): "
                          "divide each string's row by its own scale.")
    if torch.allclose(got, (w_out @ u / scale[:, None]).expand(2, 3), atol=1e-4) or torch.allclose(
            got, (w_out @ u).expand(2, 3), atol=1e-4):
        raise CheckFailed("your numbers do not depend on the activations: a neuron only writes W_out[n] when it "
                          "fires, so multiply by post[:, n].")
    expect_close(got, expected, "neuron_attributions worked by hand", hint=(
        "Neuron n adds post[:, n] * W_out[n] to the stream; project that on u and divide by the string's scale."))
    # Invariant: the neurons plus b_out give the MLP's whole contribution.
    g = torch.Generator().manual_seed(5)
    post = torch.relu(torch.randn(4, 9, generator=g))
    w_out, u = torch.randn(9, 6, generator=g), torch.randn(6, generator=g)
    scale = 1 + torch.rand(4, generator=g)
    got = call(fn, post, w_out, u, scale, what="(random: 4 strings, 9 neurons, d_model 6)")
    expect_tensor(got, "neuron_attributions(...)", shape=(4, 9), dims="batch d_mlp", floating=True)
    expect_close(got.detach().float().cpu().sum(-1), (post @ w_out) @ u / scale, "the sum over neurons",
                 atol=1e-4, hint="Summed over neurons they should give (post @ W_out) . u / scale.")
    passed("neuron_attributions splits an MLP's contribution into its neurons")
