"""The IOI chapter's checks reject the mistakes a learner would plausibly make.

tests/test_exercises.py already proves that each check fails on its stub and passes on its
solution (it runs the pages). Here each exercise gets one or more *wrong* answers, written as a
learner would write them, with a one-line comment naming the slip; the test pins both that the
check rejects it and that the message points at that slip. One test per section also runs the
exported solutions through the checks, so a wrong fixture shows up as a failing sanity test
rather than as a wrong answer that "passes"."""

from __future__ import annotations

import pytest
import torch

from interpbook.checks import CheckFailed
from interpbook.checks.ioi import task_and_metric as tm
from interpbook.solutions.ioi import task_and_metric as tm_sol

# ============================================================================================
# Section 1: the task and the metric


def test_task_and_metric_solutions_pass():
    tm.check_logits_to_logit_diff(tm_sol.logits_to_logit_diff)
    tm.check_logit_diff_directions(tm_sol.logit_diff_directions)
    tm.check_residual_to_logit_diff(tm_sol.residual_to_logit_diff)
    tm.check_end_attention(tm_sol.end_attention)


def logit_diff_last_position(logits, ds):
    # Mistake: reads every prompt at position -1, which is padding for the shorter prompts.
    last = logits[:, -1]
    b = torch.arange(len(ds))
    return last[b, ds.io_tok] - last[b, ds.s_tok]


def logit_diff_s_minus_io(logits, ds):
    # Mistake: subtracts the wrong way round.
    b = torch.arange(len(ds))
    end = logits[b, ds.end]
    return end[b, ds.s_tok] - end[b, ds.io_tok]


def logit_diff_before_end(logits, ds):
    # Mistake: off by one, as if the prediction for the answer were made one token earlier.
    b = torch.arange(len(ds))
    end = logits[b, ds.end - 1]
    return end[b, ds.io_tok] - end[b, ds.s_tok]


@pytest.mark.parametrize("wrong, message", [
    (logit_diff_last_position, r"position -1.*right-padded"),
    (logit_diff_s_minus_io, r"wrong sign"),
    (logit_diff_before_end, r"one position before END"),
])
def test_logits_to_logit_diff_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        tm.check_logits_to_logit_diff(wrong)


def directions_rows(W_U, ds):
    # Mistake: takes rows of W_U (as if it were [d_vocab, d_model]).
    return W_U[ds.io_tok] - W_U[ds.s_tok]


def directions_reversed(W_U, ds):
    # Mistake: the direction of logit(S) - logit(IO).
    return (W_U[:, ds.s_tok] - W_U[:, ds.io_tok]).T


def test_logit_diff_directions_rejects_rows():
    # The check tries a square W_U first, where rows have the right shape but the wrong values.
    with pytest.raises(CheckFailed, match=r"took rows of W_U.*a \*column\*"):
        tm.check_logit_diff_directions(directions_rows)


def test_logit_diff_directions_rejects_reversed():
    with pytest.raises(CheckFailed, match=r"point the wrong way"):
        tm.check_logit_diff_directions(directions_reversed)


def residual_sum_over_batch(stack, directions):
    # Mistake: sums over prompts instead of averaging.
    return (stack * directions).sum(-1).sum(-1)


def residual_mean_direction(stack, directions):
    # Mistake: averages the pieces and the directions first, losing each prompt's own direction.
    return (stack.mean(1) * directions.mean(0)).sum(-1)


@pytest.mark.parametrize("wrong, message", [
    (residual_sum_over_batch, r"summed over the prompts"),
    (residual_mean_direction, r"averaged the residual pieces and the directions separately"),
])
def test_residual_to_logit_diff_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        tm.check_residual_to_logit_diff(wrong)


def end_attention_transposed(pattern, end, key_pos):
    # Mistake: query and key swapped (attention from key_pos to END).
    b = torch.arange(pattern.shape[0])
    return pattern[b, :, key_pos, end].mean(0)


def end_attention_last_query(pattern, end, key_pos):
    # Mistake: the last position as the query for every prompt.
    b = torch.arange(pattern.shape[0])
    return pattern[b, :, -1, key_pos].mean(0)


@pytest.mark.parametrize("wrong, message", [
    (end_attention_transposed, r"\*from\* key_pos \*to\* END"),
    (end_attention_last_query, r"last position as the query"),
])
def test_end_attention_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        tm.check_end_attention(wrong)
