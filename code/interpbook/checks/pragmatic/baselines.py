"""Checks for section 4, "Baselines, honestly" (book/chapters/pragmatic/04-baselines.md).

Every check builds its inputs by hand, so that the right answer is known by construction:

* latent activations with *planted* latents (one that separates the concept perfectly, a
  dense decoy with the largest mean on the positives, latents that only look good when the
  unlabelled tokens are counted as positives or as negatives), with the latents and the tokens
  shuffled so that no answer sits at a convenient index;
* small activation matrices whose class means are chosen, with unlabelled (-1) rows far away;
* a residual stream of random numbers and a direction of known length, passed to the learner's
  hook with :class:`interpbook.checks.FakeHook`;
* logits whose softmax is known, on axes of different sizes so a wrong axis shows.

None of them needs the shipped SAE or a model.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, FakeHook, call, expect_close, expect_float, expect_tensor, passed

__all__ = [
    "check_best_single_latent",
    "check_sparse_probe_features",
    "check_mean_difference",
    "check_steering_hook",
    "check_vocab_mass",
]


def _f1(pred: torch.Tensor, y: torch.Tensor) -> float:
    """F1 of the positive class over the labelled tokens (y != -1)."""
    keep = y != -1
    pred, pos = pred[keep], y[keep] == 1
    tp = (pred & pos).sum().item()
    denom = pred.sum().item() + pos.sum().item()
    return 2 * tp / denom if denom else 0.0


def _planted_latents(seed: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """Activations ``f [n, d_sae]`` and labels ``y [n]`` (1, 0 and -1) with planted latents.

    Tokens: 20 positives, 60 negatives, 20 unlabelled "U1" and 20 unlabelled "U2".

    * ``good`` fires on every positive (values 2..3) and on U1 (2..3), never on a negative:
      F1 = 1 when the unlabelled tokens are left out, about 0.67 when they count as negatives.
    * ``partial`` fires on 16 of the 20 positives (value 3) and on U1 and U2 (value 1):
      F1 = 0.89 with the unlabelled tokens left out, but it wins when they count as negatives
      (its threshold can drop them) and when they count as positives (it covers them all).
    * ``weak`` fires on 14 positives only (value 1): F1 = 0.82.
    * ``decoy`` is dense: 10 on every positive and 5..15 on 80 % of the negatives, so it has by
      far the largest mean on the positives and a poor F1.
    * the other latents are sparse noise (0.5 on 5 % of the tokens).
    """
    g = torch.Generator().manual_seed(seed)
    n_pos, n_neg, n_u1, n_u2, d_sae = 20, 60, 20, 20, 24
    y = torch.cat([torch.ones(n_pos), torch.zeros(n_neg), -torch.ones(n_u1 + n_u2)]).long()
    n = len(y)
    pos, neg = slice(0, n_pos), slice(n_pos, n_pos + n_neg)
    u1, u2 = slice(n_pos + n_neg, n_pos + n_neg + n_u1), slice(n_pos + n_neg + n_u1, n)
    f = 0.5 * (torch.rand(n, d_sae, generator=g) < 0.05).float()
    cols = torch.randperm(d_sae, generator=g)[:4].tolist()
    good, partial, weak, decoy = cols
    for c in cols:
        f[:, c] = 0.0
    f[pos, good] = 2 + torch.rand(n_pos, generator=g)
    f[u1, good] = 2 + torch.rand(n_u1, generator=g)
    f[: 16, partial] = 3.0
    f[u1, partial] = 1.0
    f[u2, partial] = 1.0
    f[4:18, weak] = 1.0
    f[pos, decoy] = 10.0
    fires = torch.rand(n_neg, generator=g) < 0.8
    f[neg, decoy] = torch.where(fires, 5 + 10 * torch.rand(n_neg, generator=g), torch.zeros(n_neg))
    order = torch.randperm(n, generator=g)
    return f[order], y[order], {"good": good, "partial": partial, "weak": weak, "decoy": decoy}


def _as_int(value, what: str) -> int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise CheckFailed(f"{what} should be one number, got a tensor of shape {list(value.shape)}.")
        if value.is_floating_point():
            raise CheckFailed(f"{what} should be an integer (a latent's index), got {value.item()}.")
        return int(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CheckFailed(f"{what} should be an int (a latent's index), got {type(value).__name__}.")
    return int(value)


# --- best_single_latent -----------------------------------------------------------------------

def check_best_single_latent(fn: Callable) -> None:
    """``fn(f, y)`` returns ``(i, threshold)``: the latent whose rule ``f[:, i] > threshold``
    has the largest F1 on the labelled tokens, and a threshold that reaches it."""
    for seed in (0, 1):
        f, y, planted = _planted_latents(seed)
        out = call(fn, f.clone(), y.clone(), what="(planted latents: 120 tokens, 24 latents, 40 unlabelled)")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckFailed(f"best_single_latent should return a pair (latent index, threshold), got {out!r:.80}.")
        i = _as_int(out[0], "the latent index")
        t = expect_float(out[1], "the threshold")
        if i == planted["decoy"]:
            raise CheckFailed(
                f"you picked latent {i}, a dense decoy: it fires on every positive, with the largest mean "
                "activation on the positives, but also on 80 % of the negatives. A latent that is large on "
                "the positives is not a classifier; score each latent by how well a threshold on it "
                "separates positives from negatives (F1 over thresholds).")
        if i == planted["partial"]:
            raise CheckFailed(
                f"you picked latent {i}, which only wins if the unlabelled tokens (y == -1) take part: it "
                "fires on all of them. Leave the tokens with y == -1 out before scoring (they are neither "
                "positives nor negatives; note that `y.bool()` and `y != 0` make them positives).")
        if i != planted["good"]:
            best = torch.tensor([max(_f1(f[:, j] > v, y) for v in f[:, j].unique().tolist() + [-1.0])
                                 for j in range(f.shape[1])])
            raise CheckFailed(
                f"you picked latent {i} (best F1 {best[i]:.2f} over thresholds on the labelled tokens); "
                f"latent {planted['good']} separates the concept perfectly (F1 1.00). Score every latent "
                "by its best F1 over thresholds, with the prediction `f[:, i] > threshold`.")
        f1 = _f1(f[:, i] > t, y)
        if f1 < 1 - 1e-6:
            if _f1(f[:, i] >= t, y) > 1 - 1e-6:
                raise CheckFailed(
                    f"right latent, but with threshold {t:.4g} the rule `f[:, i] > threshold` misses the "
                    "positives whose activation equals the threshold: the convention is a strict `>`. Return "
                    "a threshold strictly below the smallest activation you want to count (a midpoint "
                    "between two sorted values works).")
            raise CheckFailed(
                f"right latent ({i}), but the threshold {t:.4g} gives F1 {f1:.2f} with the rule "
                "`f[:, i] > threshold`, where a perfect threshold exists (F1 1.00). Return the threshold "
                "at which the best F1 was reached.")
    passed("best_single_latent finds the planted latent (not the dense decoy) and a threshold with F1 = 1")


# --- sparse_probe_features --------------------------------------------------------------------

def check_sparse_probe_features(fn: Callable) -> None:
    """``fn(f, y, k)`` returns the ``k`` latents with the largest |mean(f | y=1) - mean(f | y=0)|,
    the unlabelled tokens (y == -1) left out."""
    g = torch.Generator().manual_seed(2)
    n_pos, n_neg, n_unl, d_sae = 30, 50, 40, 16
    y = torch.cat([torch.ones(n_pos), torch.zeros(n_neg), -torch.ones(n_unl)]).long()
    n = len(y)
    pos, neg, unl = slice(0, n_pos), slice(n_pos, n_pos + n_neg), slice(n_pos + n_neg, n)
    f = 0.05 * torch.rand(n, d_sae, generator=g)  # small noise everywhere
    up, down, dense, unlab, mild = torch.randperm(d_sae, generator=g)[:5].tolist()
    f[pos, up] += 3.0  # difference +3
    f[neg, down] += 2.5  # difference -2.5: fires on the negatives only
    f[:, dense] += 8.0  # the largest activation everywhere, difference ~0
    f[pos, dense] += 0.3
    f[unl, unlab] += 6.0  # fires only on unlabelled tokens: difference 0 once they are left out
    f[pos, mild] += 1.0  # difference +1: the third-ranked latent
    order = torch.randperm(n, generator=g)
    f, y = f[order], y[order]
    keep = y != -1
    diff = f[keep][y[keep] == 1].mean(0) - f[keep][y[keep] == 0].mean(0)
    for k in (2, 3):
        out = call(fn, f.clone(), y.clone(), k, what=f"(planted latents, k={k})")
        out = expect_tensor(out, f"the chosen latents (k={k})", shape=(k,), dims="k")
        if out.is_floating_point():
            raise CheckFailed(f"the chosen latents have dtype {out.dtype}; return their indices (an integer tensor).")
        got = set(out.tolist())
        if len(got) != k:
            raise CheckFailed(f"the chosen latents {sorted(got)} repeat an index; return {k} different latents.")
        if dense in got:
            raise CheckFailed(
                f"you chose latent {dense}, which has the largest mean activation on every token but about the "
                "same mean on positives and negatives. Rank by the *difference* of the two class means.")
        if unlab in got:
            raise CheckFailed(
                f"you chose latent {unlab}, which fires only on unlabelled tokens (y == -1). Leave them out "
                "before taking the class means: they are neither positives nor negatives.")
        if up in got and down not in got:
            raise CheckFailed(
                f"you kept latent {up} (difference +3) but not latent {down} (difference -2.5, it fires on the "
                "negatives). Rank by the *absolute* difference: a latent that marks the negatives is as "
                "useful to a linear probe, which can give it a negative weight.")
        expected = set(diff.abs().topk(k).indices.tolist())
        if got != expected:
            raise CheckFailed(
                f"for k={k} you chose latents {sorted(got)}; the {k} largest |mean(f | y=1) - mean(f | y=0)| "
                f"are latents {sorted(expected)} (differences {[round(diff[j].item(), 2) for j in sorted(expected)]}).")
    passed("sparse_probe_features ranks latents by the absolute difference of class means, -1 left out")


# --- mean_difference --------------------------------------------------------------------------

def check_mean_difference(fn: Callable) -> None:
    """``fn(acts, y)`` is mean(acts | y = 1) - mean(acts | y = 0), the -1 rows left out."""
    g = torch.Generator().manual_seed(3)
    d = 6
    mu_pos, mu_neg = torch.randn(d, generator=g) + 2.0, torch.randn(d, generator=g) - 1.0
    n_pos, n_neg, n_unl = 7, 13, 9

    def around(mu: torch.Tensor, n: int) -> torch.Tensor:
        noise = torch.randn(n, d, generator=g)
        return mu + noise - noise.mean(0)  # exactly mean mu

    acts = torch.cat([around(mu_pos, n_pos), around(mu_neg, n_neg), around(torch.full((d,), 20.0), n_unl)])
    y = torch.cat([torch.ones(n_pos), torch.zeros(n_neg), -torch.ones(n_unl)]).long()
    order = torch.randperm(len(y), generator=g)
    acts, y = acts[order], y[order]
    out = call(fn, acts.clone(), y.clone(), what="(20 labelled and 9 unlabelled tokens, d=6)")
    out = expect_tensor(out, "the mean difference", shape=(d,), dims="d", floating=True)
    expected = mu_pos - mu_neg
    if torch.allclose(out, -expected, atol=1e-4):
        raise CheckFailed("your vector points the wrong way: it is mean(negatives) - mean(positives). Steering "
                          "adds it, so it must point *towards* the concept: positives minus negatives.")
    rest = acts[y != 1].mean(0)
    if torch.allclose(out, mu_pos - rest, atol=1e-4):
        raise CheckFailed("you counted the unlabelled tokens (y == -1) as negatives (e.g. with `y != 1` or "
                          "`y == 0` replaced by `~(y == 1)`). Leave them out: the negatives are y == 0.")
    if torch.allclose(out, mu_pos - acts.mean(0), atol=1e-4) or torch.allclose(
            out, mu_pos - acts[y != -1].mean(0), atol=1e-4):
        raise CheckFailed("you subtracted the mean of all tokens; subtract the mean of the negatives (y == 0).")
    expect_close(out, expected, "mean(acts | y=1) - mean(acts | y=0)", hint=(
        "Average the rows with y == 1, average the rows with y == 0, subtract; ignore the rows with y == -1."))
    passed("mean_difference is positives minus negatives, the unlabelled tokens left out")


# --- steering_hook ----------------------------------------------------------------------------

def check_steering_hook(fn: Callable) -> None:
    """``fn(direction, scale)`` returns a hook ``hook(resid, hook)`` that returns ``resid`` with
    ``scale * direction / ||direction||`` added at every position except 0 (BOS)."""
    g = torch.Generator().manual_seed(4)
    batch, pos, d = 3, 5, 8
    direction = torch.randn(d, generator=g)
    direction = 5.0 * direction / direction.norm()  # length 5, so a missing normalisation shows
    original_direction = direction.clone()
    resid0 = torch.randn(batch, pos, d, generator=g)
    unit = original_direction / original_direction.norm()
    for scale in (2.0, -0.5):
        hook_fn = call(fn, direction, scale, what=f"(a direction of length 5, scale={scale})")
        if not callable(hook_fn):
            raise CheckFailed(f"steering_hook should return a hook function, got {type(hook_fn).__name__}.")
        if not torch.equal(direction, original_direction):
            raise CheckFailed(
                "steering_hook changed the `direction` tensor it was given (an in-place `/=`?). The caller "
                "still needs it: normalise into a new tensor, `direction / direction.norm()`.")
        expected = resid0.clone()
        expected[:, 1:] += scale * unit
        for attempt in (1, 2):  # the same hook runs on every forward pass: it must not accumulate
            resid = resid0.clone()
            out = call(hook_fn, resid, FakeHook(2, name="blocks.2.hook_resid_pre"),
                       what=f"(the hook, on a [3, 5, 8] residual stream, scale={scale})")
            if out is None:
                if torch.equal(resid, resid0):
                    raise CheckFailed(
                        "your hook returned None and left the residual stream unchanged, so it steers "
                        "nothing. `resid = resid + ...` only rebinds a local name: return the new tensor "
                        "(TransformerLens replaces the activation by what the hook returns).")
                out = resid  # modified in place: TransformerLens keeps the change
            out = expect_tensor(out, "the hook's output", shape=(batch, pos, d), dims="batch pos d_model")
            if not torch.allclose(out[:, 0], resid0[:, 0]):
                raise CheckFailed(
                    "your hook changed position 0. That is BOS, the same vector in every window (and left "
                    "out of the SAE): add the direction at positions 1: only.")
            added = (out[:, 1:] - resid0[:, 1:]).mean((0, 1))
            if torch.allclose(added, scale * original_direction, atol=1e-4):
                raise CheckFailed(
                    f"the hook added scale * direction, a vector of length {abs(scale) * 5:.1f}, instead of "
                    f"{abs(scale):.1f}: normalise the direction to unit length first, so that `scale` means the "
                    "same for every method.")
            if attempt == 2 and torch.allclose(added, 2 * scale * unit, atol=1e-4):
                raise CheckFailed("the second call of your hook added the direction twice: the hook must not "
                                  "keep state between forward passes.")
            if torch.allclose(added, -scale * unit, atol=1e-4):
                raise CheckFailed("your hook subtracted the direction; it should add scale * unit direction.")
            expect_close(out, expected, f"the steered residual stream (scale={scale})", hint=(
                "Positions 1: get scale * direction / direction.norm() added; position 0 is unchanged."))
    passed("steering_hook adds scale * unit direction at every non-BOS position")


# --- vocab_mass -------------------------------------------------------------------------------

def check_vocab_mass(fn: Callable) -> None:
    """``fn(logits, vocab)`` is the softmax probability (over the vocabulary axis) summed over
    the token ids in ``vocab``: shape [batch, pos]."""
    g = torch.Generator().manual_seed(5)
    batch, pos, d_vocab = 2, 3, 7
    logits = 3 * torch.randn(batch, pos, d_vocab, generator=g)
    vocab = torch.tensor([5, 1, 2])
    out = call(fn, logits.clone(), vocab.clone(), what="(logits [2, 3, 7], vocab = [5, 1, 2])")
    out = expect_tensor(out, "the probability mass", shape=(batch, pos), dims="batch pos", floating=True)
    expected = logits.softmax(-1)[..., vocab].sum(-1)
    if torch.allclose(out, logits[..., vocab].sum(-1), atol=1e-4):
        raise CheckFailed("you summed the logits; turn them into probabilities first (softmax over the "
                          "vocabulary), then sum the probabilities of the tokens in `vocab`.")
    if torch.allclose(out, logits.log_softmax(-1)[..., vocab].sum(-1), atol=1e-4):
        raise CheckFailed("you summed log-probabilities (a log of a product, not a probability); sum the "
                          "probabilities themselves: `logits.softmax(-1)[..., vocab].sum(-1)`.")
    for axis in (0, 1):
        if torch.allclose(out, logits.softmax(axis)[..., vocab].sum(-1), atol=1e-4):
            name = "batch" if axis == 0 else "position"
            raise CheckFailed(f"you took the softmax over the {name} axis ({axis}); the probabilities of the "
                              "next token are a softmax over the vocabulary, the last axis.")
    if (out < -1e-6).any() or (out > 1 + 1e-6).any():
        raise CheckFailed(f"some masses lie outside [0, 1] (range {out.min():.3g} to {out.max():.3g}): a sum of "
                          "probabilities of some tokens cannot.")
    expect_close(out, expected, "the probability mass on `vocab`", hint=(
        "softmax over the last axis, index the last axis with `vocab`, sum it."))
    passed("vocab_mass sums the next-token probabilities of the vocabulary")
