"""Checks for section 5, "What to conclude" (book/chapters/pragmatic/05-conclusions.md).

No check runs a model. ``paired_bootstrap_f1`` gets predictions whose F1 difference is the same
on every resample (identical predictions: exactly 0; a perfect classifier against one that
never says yes: exactly 1, with unlabelled tokens the perfect one says yes on), and a noisy pair
whose point estimate is counted by hand and must lie inside a non-degenerate interval.
``f1_by_group`` gets three hand-made groups whose true and false positives are counted by hand,
an empty group, and unlabelled tokens that change the answer if they are counted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_tensor, passed

__all__ = ["check_paired_bootstrap_f1", "check_f1_by_group"]


def _f1(pred: torch.Tensor, y: torch.Tensor) -> float:
    """F1 of hand-made inputs, counted directly (no -1 in them)."""
    tp = int((pred & (y == 1)).sum())
    denom = int(pred.sum()) + int((y == 1).sum())
    return 2 * tp / denom if denom else 0.0


def _interval(out, what: str) -> tuple[float, float]:
    if isinstance(out, torch.Tensor):
        out = out.tolist()
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"{what}: expected a pair (low, high) of floats, got {out!r}.")
    low, high = (float(v) for v in out)
    if low > high:
        raise CheckFailed(f"{what}: the interval ({low:.4f}, {high:.4f}) has low > high; return (low, high).")
    return low, high


def check_paired_bootstrap_f1(fn: Callable) -> None:
    """``fn(pred_a, pred_b, y, n_boot, seed)`` -> 95 % interval of F1(a) - F1(b), paired."""
    g = torch.Generator().manual_seed(0)
    n = 400
    y = (torch.rand(n, generator=g) < 0.5).long()
    noisy = torch.where(torch.rand(n, generator=g) < 0.2, ~y.bool(), y.bool())

    # 1. The same predictions twice: every resample gives a difference of exactly 0.
    out = _interval(call(fn, noisy.clone(), noisy.clone(), y.clone(), 500, 0,
                         what="(pred_a and pred_b identical)"), "identical predictions")
    if out != (0.0, 0.0):
        raise CheckFailed(
            f"with pred_a == pred_b the difference of F1 is 0 on every resample, so the interval must be "
            f"(0.0, 0.0); got ({out[0]:.4f}, {out[1]:.4f}). Resample the *same* token indices for both "
            "classifiers (a paired bootstrap), not separate indices for each.")

    # 2. Perfect vs never-yes, with unlabelled tokens on which the perfect one says yes.
    y2 = torch.cat([y, torch.full((50,), -1)])
    perfect = torch.cat([y.bool(), torch.ones(50, dtype=torch.bool)])
    never = torch.zeros(n + 50, dtype=torch.bool)
    out = _interval(call(fn, perfect, never, y2, 300, 1, what="(a perfect classifier against one that never says yes)"),
                    "perfect vs never")
    if out == (-1.0, -1.0):
        raise CheckFailed("the interval is (-1, -1): you computed F1(b) - F1(a). Return F1(pred_a) - F1(pred_b).")
    if out != (1.0, 1.0):
        hint = ""
        if out[1] < 1.0 - 1e-6 and out[0] > 0.5:
            hint = (" Looks like the unlabelled tokens (y == -1) were kept: the perfect classifier says yes on them, "
                    "so counting them as negatives adds false positives. Drop them before resampling.")
        raise CheckFailed(
            "a classifier that is right on every labelled token against one that never says yes: F1 is 1 and 0 on "
            f"every resample, so the interval must be (1.0, 1.0); got ({out[0]:.4f}, {out[1]:.4f}).{hint}")

    # 3. A noisy pair: the point estimate lies inside an interval of sensible width.
    other = torch.where(torch.rand(n, generator=g) < 0.3, ~y.bool(), y.bool())
    point = _f1(noisy, y) - _f1(other, y)
    low, high = _interval(call(fn, noisy, other, y, 1000, 2, what="(two noisy classifiers)"), "noisy pair")
    if high - low < 0.01:
        raise CheckFailed(
            f"two classifiers that disagree on many of 400 tokens got an interval of width {high - low:.4f}: "
            "far too narrow. Are you resampling *with* replacement (torch.randint), n tokens per resample? "
            "A permutation of the same tokens gives the same F1 every time.")
    if not low <= point <= high:
        raise CheckFailed(f"the F1 difference on all tokens is {point:.4f}, but your interval is ({low:.4f}, "
                          f"{high:.4f}), which does not contain it. Compute F1(a) - F1(b) on each resample.")
    if high - low > 0.25:
        raise CheckFailed(f"the interval ({low:.4f}, {high:.4f}) is far too wide for 400 tokens: is it the 2.5th "
                          "and 97.5th percentile of the resampled differences?")
    # 95 %, not a narrower level: the 2.5/97.5 percentiles of 1000 resamples of this pair span more
    # than the 10/90 ones by a margin far above resampling noise (measured over seeds: 0.113-0.124
    # against 0.076-0.080).
    if high - low < 0.09:
        raise CheckFailed(f"the interval ({low:.4f}, {high:.4f}) looks too narrow for a 95 % interval: use the "
                          "2.5th and 97.5th percentiles (torch.quantile(diffs, torch.tensor([0.025, 0.975]))).")

    # 4. The seed decides the resamples, not the global random state.
    torch.manual_seed(123)
    first = _interval(call(fn, noisy, other, y, 300, 7, what="(seed 7)"), "seed 7")
    torch.manual_seed(456)
    second = _interval(call(fn, noisy, other, y, 300, 7, what="(seed 7 again)"), "seed 7 again")
    if first != second:
        raise CheckFailed("two calls with the same seed gave different intervals: draw the resamples from a "
                          "torch.Generator seeded with `seed`, not from the global random state.")
    passed("paired_bootstrap_f1: paired resamples, unlabelled tokens dropped, a 95 % percentile interval.")


def check_f1_by_group(fn: Callable) -> None:
    """``fn(pred, y, group, n_groups)`` -> F1 per group, y == -1 ignored, 0 for an empty group."""
    # group 0: TP 2, FP 2, FN 1 -> F1 = 2*2 / (4 + 3) = 0.5714 (recall 2/3)
    # group 1: TP 1, FN 1, a true negative, plus two -1 tokens predicted yes
    #          -> F1 = 2*1 / (1 + 2) = 0.6667 (recall 0.5; 0.4 if the -1 count as false positives)
    # group 2: only -1 tokens -> 0 (nothing to score)
    # group 3: no tokens at all -> 0
    pred = torch.tensor([1, 1, 1, 1, 0,   1, 0, 1, 1, 0,   1, 0], dtype=torch.bool)
    y = torch.tensor([1, 1, 0, 0, 1,      1, 1, -1, -1, 0,  -1, -1])
    group = torch.tensor([0, 0, 0, 0, 0,  1, 1, 1, 1, 1,    2, 2])
    expected = torch.tensor([4 / 7, 2 / 3, 0.0, 0.0])
    out = call(fn, pred.clone(), y.clone(), group.clone(), 4, what="(12 hand-made tokens in 4 groups)")
    out = expect_tensor(out, "the F1 per group", shape=(4,), dims="n_groups", floating=True)
    if torch.isnan(out).any():
        raise CheckFailed(f"got {out.tolist()}: a group with no labelled tokens (or no positives and no predicted "
                          "positives) must score 0, not NaN.")
    if torch.allclose(out, expected, atol=1e-4):
        passed("f1_by_group: per-group F1 with unlabelled tokens ignored and empty groups at 0.")
        return
    overall = _f1(pred[y != -1], y[y != -1])
    if torch.allclose(out[:2], torch.tensor([overall, overall]), atol=1e-4):
        raise CheckFailed(f"every group got the overall F1 {overall:.4f}: select the tokens of each group "
                          "(group == g) before counting.")
    if abs(out[1].item() - 0.4) < 1e-4:
        raise CheckFailed(f"group 1 scored {out[1]:.4f}, expected {expected[1]:.4f}: the two unlabelled (-1) "
                          "tokens predicted yes were counted as false positives. Drop y == -1 first.")
    if abs(out[0].item() - 2 / 3) < 1e-4 and abs(out[1].item() - 0.5) < 1e-4:
        raise CheckFailed("got the recall of each group (TP / actual positives), not F1 = 2 TP / (predicted + actual).")
    raise CheckFailed(f"expected F1 per group {[round(v, 4) for v in expected.tolist()]}, got "
                      f"{[round(v, 4) for v in out.tolist()]}. Per group: keep the labelled tokens of the group, "
                      "then F1 = 2 TP / (predicted positives + actual positives), 0 when both are 0.")
