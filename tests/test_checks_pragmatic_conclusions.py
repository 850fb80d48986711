"""Section 5 of the pragmatic chapter ("What to conclude"): each check fails on its stub, passes
on the exported solution, and rejects the mistakes a learner would plausibly make, with a
message that names the slip."""

from __future__ import annotations

import pytest
import torch

from interpbook.checks import CheckFailed
from interpbook.checks.pragmatic import conclusions as checks
from interpbook.solutions.pragmatic import conclusions as sol


def _stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("name", checks.__all__)
def test_checks_fail_on_the_stub(name):
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        getattr(checks, name)(_stub)


def test_solutions_pass():
    checks.check_paired_bootstrap_f1(sol.paired_bootstrap_f1)
    checks.check_f1_by_group(sol.f1_by_group)


# --- paired_bootstrap_f1 ----------------------------------------------------------------------


def _f1_rows(pred, pos, idx):
    p, t = pred[idx], pos[idx]
    tp = (p & t).sum(-1).float()
    return 2 * tp / (p.sum(-1) + t.sum(-1)).clamp(min=1)


def bootstrap_unpaired(pred_a, pred_b, y, n_boot=1000, seed=0):
    # Mistake: separate resamples for the two classifiers, so the interval measures the noise of
    # two independent samples instead of the difference on the same tokens.
    keep = y != -1
    a, b, pos = pred_a[keep].bool(), pred_b[keep].bool(), y[keep] == 1
    g = torch.Generator().manual_seed(seed)
    ia = torch.randint(len(pos), (n_boot, len(pos)), generator=g)
    ib = torch.randint(len(pos), (n_boot, len(pos)), generator=g)
    d = _f1_rows(a, pos, ia) - _f1_rows(b, pos, ib)
    low, high = torch.quantile(d, torch.tensor([0.025, 0.975]))
    return low.item(), high.item()


def bootstrap_keeps_unlabelled(pred_a, pred_b, y, n_boot=1000, seed=0):
    # Mistake: `pos = y == 1` on every token, so the -1 tokens count as negatives.
    a, b, pos = pred_a.bool(), pred_b.bool(), y == 1
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(pos), (n_boot, len(pos)), generator=g)
    d = _f1_rows(a, pos, idx) - _f1_rows(b, pos, idx)
    low, high = torch.quantile(d, torch.tensor([0.025, 0.975]))
    return low.item(), high.item()


def bootstrap_b_minus_a(pred_a, pred_b, y, n_boot=1000, seed=0):
    # Mistake: the difference the wrong way round.
    low, high = sol.paired_bootstrap_f1(pred_b, pred_a, y, n_boot, seed)
    return low, high


def bootstrap_permutation(pred_a, pred_b, y, n_boot=1000, seed=0):
    # Mistake: "resampling" by shuffling, i.e. without replacement: every resample holds the
    # same tokens, so the F1 difference never changes.
    keep = y != -1
    a, b, pos = pred_a[keep].bool(), pred_b[keep].bool(), y[keep] == 1
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randperm(len(pos), generator=g) for _ in range(n_boot)])
    d = _f1_rows(a, pos, idx) - _f1_rows(b, pos, idx)
    low, high = torch.quantile(d, torch.tensor([0.025, 0.975]))
    return low.item(), high.item()


def bootstrap_80_percent(pred_a, pred_b, y, n_boot=1000, seed=0):
    # Mistake: the 10th and 90th percentiles (an 80 % interval) instead of 2.5 and 97.5.
    keep = y != -1
    a, b, pos = pred_a[keep].bool(), pred_b[keep].bool(), y[keep] == 1
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(pos), (n_boot, len(pos)), generator=g)
    d = _f1_rows(a, pos, idx) - _f1_rows(b, pos, idx)
    low, high = torch.quantile(d, torch.tensor([0.1, 0.9]))
    return low.item(), high.item()


def bootstrap_global_rng(pred_a, pred_b, y, n_boot=1000, seed=0):
    # Mistake: the seed is ignored and the resamples come from the global random state.
    keep = y != -1
    a, b, pos = pred_a[keep].bool(), pred_b[keep].bool(), y[keep] == 1
    idx = torch.randint(len(pos), (n_boot, len(pos)))
    d = _f1_rows(a, pos, idx) - _f1_rows(b, pos, idx)
    low, high = torch.quantile(d, torch.tensor([0.025, 0.975]))
    return low.item(), high.item()


@pytest.mark.parametrize(("wrong", "match"), [
    (bootstrap_unpaired, "paired bootstrap"),
    (bootstrap_keeps_unlabelled, "unlabelled tokens"),
    (bootstrap_b_minus_a, "F1\\(b\\) - F1\\(a\\)"),
    (bootstrap_permutation, "with\\* replacement"),
    (bootstrap_80_percent, "too narrow for a 95 % interval"),
    (bootstrap_global_rng, "torch.Generator"),
])
def test_paired_bootstrap_rejects(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_paired_bootstrap_f1(wrong)


# --- f1_by_group ------------------------------------------------------------------------------


def f1_overall_for_every_group(pred, y, group, n_groups):
    # Mistake: the overall F1, repeated for each group.
    _, _, f1 = _prf(pred, y)
    return torch.full((n_groups,), f1)


def _prf(pred, y):
    keep = y != -1
    p, pos = pred[keep].bool(), y[keep] == 1
    tp = (p & pos).sum().item()
    prec = tp / p.sum().item() if p.sum() else 0.0
    rec = tp / pos.sum().item() if pos.sum() else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


def f1_by_group_keeps_unlabelled(pred, y, group, n_groups):
    # Mistake: the -1 tokens stay in, as negatives.
    pos = y == 1
    tp = torch.zeros(n_groups).index_add_(0, group, (pred.bool() & pos).float())
    denom = torch.zeros(n_groups).index_add_(0, group, pred.float() + pos.float())
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros(n_groups))


def recall_by_group(pred, y, group, n_groups):
    # Mistake: recall (TP / actual positives) instead of F1.
    keep = y != -1
    pred, pos, group = pred[keep].bool(), y[keep] == 1, group[keep]
    tp = torch.zeros(n_groups).index_add_(0, group, (pred & pos).float())
    n_pos = torch.zeros(n_groups).index_add_(0, group, pos.float())
    return torch.where(n_pos > 0, tp / n_pos.clamp(min=1), torch.zeros(n_groups))


def f1_by_group_nan_when_empty(pred, y, group, n_groups):
    # Mistake: 0 / 0 left as NaN for a group with nothing to score.
    keep = y != -1
    pred, pos, group = pred[keep].bool(), y[keep] == 1, group[keep]
    tp = torch.zeros(n_groups).index_add_(0, group, (pred & pos).float())
    denom = torch.zeros(n_groups).index_add_(0, group, pred.float() + pos.float())
    return 2 * tp / denom


@pytest.mark.parametrize(("wrong", "match"), [
    (f1_overall_for_every_group, "overall F1"),
    (f1_by_group_keeps_unlabelled, "unlabelled"),
    (recall_by_group, "recall"),
    (f1_by_group_nan_when_empty, "not NaN"),
])
def test_f1_by_group_rejects(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_f1_by_group(wrong)
