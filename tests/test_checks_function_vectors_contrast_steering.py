"""The checks of function-vectors section 5 (contrast steering): each fails on its stub, passes
on the exported solution, and rejects plausible wrong answers with a message that names the
mistake."""

from __future__ import annotations

import random

import pytest
from _check_suite import check_suite

from interpbook.checks import CheckFailed
from interpbook.checks.function_vectors import contrast_steering as checks
from interpbook.datasets import icl_tasks as data
from interpbook.solutions.function_vectors.contrast_steering import (
    contrast_prompts,
    contrast_vector,
    match_norm,
    mean_difference,
)
from interpbook.solutions.function_vectors.nnsight_basics import final_residuals

SOLUTIONS = {
    "contrast_vector": contrast_vector,
    "mean_difference": mean_difference,
    "contrast_prompts": contrast_prompts,
    "match_norm": match_norm,
}


test_check_fails_on_the_stub, test_check_passes_on_the_solution, test_every_check_is_tested = check_suite(
    checks, SOLUTIONS)


# --- contrast_vector --------------------------------------------------------------------------

def _hidden_states(prompts):
    model, tokenizer, _ = checks._setup()  # the model object that `lm` wraps
    ids = tokenizer(prompts, return_tensors="pt")["input_ids"].to(model.device)
    return model(ids, output_hidden_states=True).hidden_states


def vector_off_by_one(lm, prompts_a, prompts_b, layer):
    # Mistake: hidden_states[layer] is the stream *before* block `layer` (index 0 is the embeddings).
    return _hidden_states(prompts_a)[layer][:, -1].mean(0) - _hidden_states(prompts_b)[layer][:, -1].mean(0)


def vector_hidden_states_ln_f(lm, prompts_a, prompts_b, layer):
    # Mistake: right index, but the last entry of hidden_states has ln_f applied.
    return (_hidden_states(prompts_a)[layer + 1][:, -1].mean(0)
            - _hidden_states(prompts_b)[layer + 1][:, -1].mean(0))


def vector_swapped(lm, prompts_a, prompts_b, layer):
    # Mistake: b minus a.
    return mean_difference(final_residuals(lm, prompts_b)[:, layer], final_residuals(lm, prompts_a)[:, layer])


def vector_next_block(lm, prompts_a, prompts_b, layer):
    # Mistake: counts layers from 1, so reads the stream after block layer + 1 (or wraps round).
    k = (layer + 1) % 4
    return mean_difference(final_residuals(lm, prompts_a)[:, k], final_residuals(lm, prompts_b)[:, k])


def vector_all_positions(lm, prompts_a, prompts_b, layer):
    # Mistake: averages over every position, not just the final one.
    def mean_stream(prompts):
        with lm.trace(prompts):
            out = lm.transformer.h[layer].output.mean(1).save()
        return out
    return mean_difference(mean_stream(prompts_a), mean_stream(prompts_b))


def vector_of_sums(lm, prompts_a, prompts_b, layer):
    # Mistake: difference of sums over the prompts.
    return final_residuals(lm, prompts_a)[:, layer].sum(0) - final_residuals(lm, prompts_b)[:, layer].sum(0)


def vector_per_prompt(lm, prompts_a, prompts_b, layer):
    # Mistake: forgets to average, returns one row per prompt.
    return final_residuals(lm, prompts_a)[:, layer]


@pytest.mark.parametrize("wrong, message", [
    (vector_off_by_one, r"before\* block 0 .*off by one"),
    (vector_hidden_states_ln_f, r"ln_f"),
    (vector_swapped, r"wrong way"),
    (vector_next_block, r"difference after block 1"),
    (vector_all_positions, r"averaged over positions"),
    (vector_of_sums, r"sums"),
    (vector_per_prompt, r"expected one vector"),
])
def test_contrast_vector_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_contrast_vector(wrong)


# --- mean_difference --------------------------------------------------------------------------

def diff_swapped(acts_a, acts_b):
    # Mistake: points from a towards b.
    return acts_b.mean(0) - acts_a.mean(0)


def diff_of_sums(acts_a, acts_b):
    # Mistake: sums instead of means (grows with the number of prompts).
    return acts_a.sum(0) - acts_b.sum(0)


def diff_one_count(acts_a, acts_b):
    # Mistake: divides both sums by the total count.
    return (acts_a.sum(0) - acts_b.sum(0)) / (len(acts_a) + len(acts_b))


def diff_no_mean(acts_a, acts_b):
    # Mistake: forgets to average at all (only broadcasts when the groups are the same size).
    return acts_a - acts_b.mean(0)


@pytest.mark.parametrize("wrong, message", [
    (diff_swapped, r"wrong way"),
    (diff_of_sums, r"difference of the sums"),
    (diff_one_count, r"divided both sums by one count"),
    (diff_no_mean, r"one vector of shape"),
])
def test_mean_difference_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_mean_difference(wrong)


# --- contrast_prompts -------------------------------------------------------------------------

TRAIN, HELD = data.split_pairs()


def prompts_swapped(task_a, task_b, queries, n_examples=5, seed=0):
    # Mistake: the two lists come back in the wrong order.
    a, b = contrast_prompts(task_a, task_b, queries, n_examples, seed)
    return b, a


def prompts_held_out(task_a, task_b, queries, n_examples=5, seed=0):
    # Mistake: draws the examples from all pairs, held-out ones included.
    rng, pairs = random.Random(seed), data.task_pairs()
    out = ([], [])
    for q in queries:
        for task, prompts in zip((task_a, task_b), out):
            prompts.append(data.icl_prompt(rng.sample([p for p in pairs[task] if p[0] != q], n_examples), q))
    return out


def prompts_query_leak(task_a, task_b, queries, n_examples=5, seed=0):
    # Mistake: does not leave out the query's own pair, so it can appear as an example.
    rng = random.Random(seed)
    out = ([], [])
    for q in queries:
        for task, prompts in zip((task_a, task_b), out):
            own = [p for p in TRAIN[task] if p[0] == q]
            others = rng.sample([p for p in TRAIN[task] if p[0] != q], n_examples - len(own))
            prompts.append(data.icl_prompt(own + others, q))
    return out


def prompts_own_queries(task_a, task_b, queries, n_examples=5, seed=0):
    # Mistake: task B's prompts get B's own (different) query words.
    a, _ = contrast_prompts(task_a, task_b, queries, n_examples, seed)
    b, _ = data.sample_prompts(task_b, n=len(queries), n_examples=n_examples, seed=seed)
    return a, b


def prompts_fixed_examples(task_a, task_b, queries, n_examples=5, seed=0):
    # Mistake: draws one set of examples per task and reuses it for every query.
    rng = random.Random(seed)
    fixed = {t: rng.sample(TRAIN[t], n_examples + 1) for t in (task_a, task_b)}
    return tuple([data.icl_prompt([p for p in fixed[t] if p[0] != q][:n_examples], q) for q in queries]
                 for t in (task_a, task_b))


def prompts_global_random(task_a, task_b, queries, n_examples=5, seed=0):
    # Mistake: uses the global random module, so the seed does nothing.
    out = ([], [])
    for q in queries:
        for task, prompts in zip((task_a, task_b), out):
            prompts.append(data.icl_prompt(random.sample([p for p in TRAIN[task] if p[0] != q], n_examples), q))
    return out


def prompts_with_replacement(task_a, task_b, queries, n_examples=5, seed=0):
    # Mistake: rng.choices draws with replacement, so examples repeat.
    rng = random.Random(seed)
    out = ([], [])
    for q in queries:
        for task, prompts in zip((task_a, task_b), out):
            pool = [p for p in TRAIN[task] if p[0] != q][:3]
            prompts.append(data.icl_prompt(rng.choices(pool, k=n_examples), q))
    return out


@pytest.mark.parametrize("wrong, message", [
    (prompts_swapped, r"Are the two swapped"),
    (prompts_held_out, r"held-out pair"),
    (prompts_query_leak, r"among its own examples"),
    (prompts_own_queries, r"same word"),
    (prompts_fixed_examples, r"same example"),
    (prompts_global_random, r"random.Random\(seed\)"),
    (prompts_with_replacement, r"repeats an example"),
])
def test_contrast_prompts_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_contrast_prompts(wrong)


# --- match_norm -------------------------------------------------------------------------------

def norm_unit(vector, reference):
    # Mistake: unit-normalises only.
    return vector / vector.norm()


def norm_upside_down(vector, reference):
    # Mistake: the ratio of norms is inverted.
    return vector * (vector.norm() / reference.norm())


def norm_reference(vector, reference):
    # Mistake: returns the reference.
    return reference.clone()


def norm_squared(vector, reference):
    # Mistake: uses squared norms.
    return vector * (reference.pow(2).sum() / vector.pow(2).sum())


@pytest.mark.parametrize("wrong, message", [
    (norm_unit, r"norm 1"),
    (norm_upside_down, r"upside down"),
    (norm_reference, r"reference itself"),
    (norm_squared, r"L2 norm"),
])
def test_match_norm_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_match_norm(wrong)


def test_contrast_vector_check_leaves_no_hooks():
    model = checks._setup()[0]
    checks.check_contrast_vector(contrast_vector)  # a first run lets nnsight install its own hooks
    before = [len(block._forward_hooks) for block in model.transformer.h]
    checks.check_contrast_vector(contrast_vector)
    assert [len(block._forward_hooks) for block in model.transformer.h] == before
