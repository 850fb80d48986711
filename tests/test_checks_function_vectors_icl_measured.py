"""The checks of function_vectors section 2 (icl_measured): each fails on its stub, passes on the
exported solution, and rejects plausible wrong answers with a message that names the mistake."""

from __future__ import annotations

import pytest
import torch
from _check_suite import check_suite

from interpbook.checks import CheckFailed
from interpbook.checks.function_vectors import icl_measured as checks
from interpbook.datasets import icl_tasks as data
from interpbook.solutions.function_vectors.icl_measured import (
    accuracy_by_shots,
    answer_rank,
    logit_lens,
    top1_accuracy,
)

SOLUTIONS = {
    "top1_accuracy": top1_accuracy,
    "accuracy_by_shots": accuracy_by_shots,
    "logit_lens": logit_lens,
    "answer_rank": answer_rank,
}


test_check_fails_on_the_stub, test_check_passes_on_the_solution, test_every_check_is_tested = check_suite(
    checks, SOLUTIONS, no_grad=True)


# --- top1_accuracy ----------------------------------------------------------------------------

def top1_wrong_axis(logits, answer_ids):
    # Mistake: the argmax runs over the batch axis instead of the vocabulary.
    return (logits.argmax(0) == answer_ids).float().mean().item()


def top1_count(logits, answer_ids):
    # Mistake: returns the number of right answers, not the fraction.
    return (logits.argmax(-1) == answer_ids).sum().item()


@pytest.mark.parametrize("wrong, message", [
    (top1_wrong_axis, r"batch axis"),
    (top1_count, r"number of right answers"),
])
def test_top1_accuracy_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_top1_accuracy(wrong)


# --- accuracy_by_shots ------------------------------------------------------------------------

def _score(model, tokenizer, prompts, answers, position=-1):
    ids = tokenizer(prompts, return_tensors="pt")["input_ids"]
    want = torch.tensor(tokenizer.convert_tokens_to_ids(answers))
    return (model(ids).logits[:, position].argmax(-1) == want).float().mean().item()


def shots_same_prompts(model, tokenizer, task, shots, n=40, shuffle_labels=False, random_labels=False):
    # Mistake: builds the prompts once (with the largest count) and scores them for every count.
    prompts, answers = data.sample_prompts(task, n, max(shots), shuffle_labels=shuffle_labels,
                                           random_labels=random_labels)
    return torch.tensor([_score(model, tokenizer, prompts, answers) for _ in shots])


def shots_off_by_one(model, tokenizer, task, shots, n=40, shuffle_labels=False, random_labels=False):
    # Mistake: counts the query as an example, so every prompt has one example too many.
    return torch.tensor([_score(model, tokenizer, *data.sample_prompts(task, n, k + 1, shuffle_labels=shuffle_labels,
                                                                       random_labels=random_labels))
                         for k in shots])


def shots_first_position(model, tokenizer, task, shots, n=40, shuffle_labels=False, random_labels=False):
    # Mistake: reads the logits at position 0 instead of the final one.
    return torch.tensor([_score(model, tokenizer, *data.sample_prompts(task, n, k, shuffle_labels=shuffle_labels,
                                                                       random_labels=random_labels),
                                position=0) for k in shots])


def shots_ignores_shuffle(model, tokenizer, task, shots, n=40, shuffle_labels=False, random_labels=False):
    # Mistake: never passes shuffle_labels on, so the corrupted baseline is the clean one.
    return torch.tensor([_score(model, tokenizer, *data.sample_prompts(task, n, k, random_labels=random_labels))
                         for k in shots])


def shots_ignores_random(model, tokenizer, task, shots, n=40, shuffle_labels=False, random_labels=False):
    # Mistake: forgets the new flag, so the random-label baseline is the clean one.
    return torch.tensor([_score(model, tokenizer, *data.sample_prompts(task, n, k, shuffle_labels=shuffle_labels))
                         for k in shots])


@pytest.mark.parametrize("wrong, message", [
    (shots_same_prompts, r"same accuracy .* for every shot count"),
    (shots_off_by_one, r"Off by one"),
    (shots_first_position, r"last position"),
    (shots_ignores_shuffle, r"Pass `shuffle_labels` on"),
    (shots_ignores_random, r"Pass `random_labels` on"),
])
def test_accuracy_by_shots_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_accuracy_by_shots(wrong)


# --- logit_lens -------------------------------------------------------------------------------

def _resid(lm, prompts, position=-1):
    resid = []
    with lm.trace(prompts):
        for block in lm.transformer.h:
            resid.append(block.output[:, position].save())
    return torch.stack(resid, 1)


def lens_no_ln_f(lm, prompts):
    # Mistake: unembeds the raw residual stream, without the final LayerNorm.
    return lm.lm_head(_resid(lm, prompts)).log_softmax(-1)


def lens_first_position(lm, prompts):
    # Mistake: reads position 0 (<bos>) instead of the final position.
    return lm.lm_head(lm.transformer.ln_f(_resid(lm, prompts, position=0))).log_softmax(-1)


def lens_logits(lm, prompts):
    # Mistake: returns the logits, not log-probabilities.
    return lm.lm_head(lm.transformer.ln_f(_resid(lm, prompts)))


def lens_with_embeddings(lm, prompts):
    # Mistake: one row per hidden state, embeddings included (n_layer + 1 rows).
    emb = []
    with lm.trace(prompts):
        emb.append(lm.transformer.drop.output[:, -1].save())
    resid = torch.cat([torch.stack(emb, 1), _resid(lm, prompts)], 1)
    return lm.lm_head(lm.transformer.ln_f(resid)).log_softmax(-1)


@pytest.mark.parametrize("wrong, message", [
    (lens_no_ln_f, r"final LayerNorm is missing"),
    (lens_first_position, r"position 0"),
    (lens_logits, r"not log-probabilities"),
    (lens_with_embeddings, r"without the embeddings"),
])
def test_logit_lens_rejects(wrong, message):
    with torch.no_grad(), pytest.raises(CheckFailed, match=message):
        checks.check_logit_lens(wrong)


# --- answer_rank ------------------------------------------------------------------------------

def rank_from_one(log_probs, answer_ids):
    # Mistake: counts the answer itself (>=), so the top word gets rank 1.
    idx = answer_ids.view(-1, *[1] * (log_probs.ndim - 1)).expand(*log_probs.shape[:-1], 1)
    return (log_probs >= log_probs.gather(-1, idx)).sum(-1)


def rank_ascending(log_probs, answer_ids):
    # Mistake: sorts in ascending order, so the rank counts the words *below* the answer.
    idx = answer_ids.view(-1, *[1] * (log_probs.ndim - 1)).expand(*log_probs.shape[:-1], 1)
    return (log_probs < log_probs.gather(-1, idx)).sum(-1)


@pytest.mark.parametrize("wrong, message", [
    (rank_from_one, r"one too high"),
    (rank_ascending, r"count from the bottom"),
])
def test_answer_rank_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_answer_rank(wrong)
