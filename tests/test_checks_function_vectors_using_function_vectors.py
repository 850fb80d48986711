"""The checks of function_vectors section 4 (using function vectors): each fails on its stub,
passes on the exported solution, and rejects plausible wrong answers with a message that names
the mistake."""

from __future__ import annotations

import pytest
import torch
from _check_suite import check_suite

from interpbook.checks import CheckFailed
from interpbook.checks.function_vectors import using_function_vectors as checks
from interpbook.datasets import icl_tasks as data
from interpbook.solutions.function_vectors.using_function_vectors import (
    accuracy_with_vector,
    add_at_final,
    cross_task_table,
    restored_fraction,
)

SOLUTIONS = {
    "add_at_final": add_at_final,
    "accuracy_with_vector": accuracy_with_vector,
    "restored_fraction": restored_fraction,
    "cross_task_table": cross_task_table,
}


test_check_fails_on_the_stub, test_check_passes_on_the_solution, test_every_check_is_tested = check_suite(
    checks, SOLUTIONS)


# --- add_at_final -------------------------------------------------------------------------------

def add_everywhere(lm, prompts, layer, vector):
    # Mistake: adds the vector at every position, not only the final one.
    with lm.trace(prompts):
        lm.transformer.h[layer].output[:] += vector
        logits = lm.lm_head.output[:, -1].save()
    return logits


def add_next_block(lm, prompts, layer, vector):
    # Mistake: off by one, edits the output of the block after `layer`.
    with lm.trace(prompts):
        lm.transformer.h[min(layer + 1, 3)].output[:, -1] += vector
        logits = lm.lm_head.output[:, -1].save()
    return logits


def add_all_logits(lm, prompts, layer, vector):
    # Mistake: returns the logits at every position.
    with lm.trace(prompts):
        lm.transformer.h[layer].output[:, -1] += vector
        logits = lm.lm_head.output.save()
    return logits


def add_nothing(lm, prompts, layer, vector):
    # Mistake: adds to a saved copy, so the forward pass never sees the vector.
    with lm.trace(prompts):
        h = lm.transformer.h[layer].output.clone()
        h[:, -1] += vector
        logits = lm.lm_head.output[:, -1].save()
    return logits


@pytest.mark.parametrize("wrong, message", [
    (add_everywhere, r"EVERY position"),
    (add_next_block, r"after block 2"),
    (add_all_logits, r"every position; return only the final"),
    (add_nothing, r"the vector was not added"),
])
def test_add_at_final_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_add_at_final(wrong)


# --- accuracy_with_vector ----------------------------------------------------------------------

def acc_query_word(lm, tokenizer, prompts, answers, layer, vector):
    # Mistake: compares the prediction with the query word (the word before `->`).
    top = add_at_final(lm, prompts, layer, vector).argmax(-1)
    want = torch.tensor(tokenizer.convert_tokens_to_ids([p.split()[-2] for p in prompts]))
    return (top.cpu() == want).float().mean().item()


def acc_bos_ids(lm, tokenizer, prompts, answers, layer, vector):
    # Mistake: tokenizes the answers with the tokenizer, whose first id is <bos>.
    top = add_at_final(lm, prompts, layer, vector).argmax(-1)
    want = tokenizer(answers, return_tensors="pt")["input_ids"][:, 0]
    return (top.cpu() == want).float().mean().item()


def acc_no_vector(lm, tokenizer, prompts, answers, layer, vector):
    # Mistake: forgets to pass the vector on (adds zero).
    top = add_at_final(lm, prompts, layer, torch.zeros_like(vector)).argmax(-1)
    want = torch.tensor(tokenizer.convert_tokens_to_ids(answers))
    return (top.cpu() == want).float().mean().item()


def acc_percent(lm, tokenizer, prompts, answers, layer, vector):
    # Mistake: a percentage.
    return 100 * accuracy_with_vector(lm, tokenizer, prompts, answers, layer, vector)


@pytest.mark.parametrize("wrong, message", [
    (acc_query_word, r"query words"),
    (acc_bos_ids, r"<bos>"),
    (acc_no_vector, r"WITHOUT the vector"),
    (acc_percent, r"percentage"),
])
def test_accuracy_with_vector_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_accuracy_with_vector(wrong)


# --- restored_fraction -------------------------------------------------------------------------

def frac_over_icl(acc_fv, acc_zero, acc_icl, min_gap=0.1):
    # Mistake: divides by the ICL accuracy, forgetting the zero-shot baseline.
    return acc_fv / acc_icl


def frac_clipped(acc_fv, acc_zero, acc_icl, min_gap=0.1):
    # Mistake: clips to [0, 1], hiding a vector that hurts.
    gap = acc_icl - acc_zero
    return torch.where(gap >= min_gap, ((acc_fv - acc_zero) / gap).clamp(0, 1), torch.nan)


def frac_no_guard(acc_fv, acc_zero, acc_icl, min_gap=0.1):
    # Mistake: divides by any gap, however small.
    return (acc_fv - acc_zero) / (acc_icl - acc_zero)


def frac_abs_gap(acc_fv, acc_zero, acc_icl, min_gap=0.1):
    # Mistake: compares the absolute gap with min_gap.
    gap = acc_icl - acc_zero
    return torch.where(gap.abs() >= min_gap, (acc_fv - acc_zero) / gap, torch.nan)


def frac_fixed_threshold(acc_fv, acc_zero, acc_icl, min_gap=0.1):
    # Mistake: ignores the min_gap argument.
    gap = acc_icl - acc_zero
    return torch.where(gap >= 0.1, (acc_fv - acc_zero) / gap, torch.nan)


@pytest.mark.parametrize("wrong, message", [
    (frac_over_icl, r"acc_fv / acc_icl"),
    (frac_clipped, r"Do not clip"),
    (frac_no_guard, r"gap of only 0.05"),
    (frac_abs_gap, r"signed gap"),
    (frac_fixed_threshold, r"`min_gap` argument"),
])
def test_restored_fraction_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_restored_fraction(wrong)


# --- cross_task_table --------------------------------------------------------------------------

def table_counts_missing(lm, tokenizer, fvs, queries, answer_of, layer):
    # Mistake: scores every query, counting those task i has no answer for as wrong.
    table = torch.full((len(fvs), len(queries)), torch.nan)
    for i, vector in enumerate(fvs):
        for j, words in enumerate(queries):
            top = add_at_final(lm, [data.icl_prompt([], x) for x in words], layer, vector).argmax(-1).tolist()
            want = [tokenizer.convert_tokens_to_ids(answer_of[i][x]) if x in answer_of[i] else -1 for x in words]
            table[i, j] = sum(a == b for a, b in zip(top, want)) / len(words)
    return table


def table_transposed(lm, tokenizer, fvs, queries, answer_of, layer):
    # Mistake: returns [query_task, fv_task].
    return cross_task_table(lm, tokenizer, fvs, queries, answer_of, layer).T


def table_zero_not_nan(lm, tokenizer, fvs, queries, answer_of, layer):
    # Mistake: fills the entries without any scorable query with 0 instead of NaN.
    return cross_task_table(lm, tokenizer, fvs, queries, answer_of, layer).nan_to_num(0.0)


@pytest.mark.parametrize("wrong, message", [
    (table_counts_missing, r"counted the queries"),
    (table_transposed, r"\[query_task, fv_task\]"),
    (table_zero_not_nan, r"NaN in the wrong places"),
])
def test_cross_task_table_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_cross_task_table(wrong)
