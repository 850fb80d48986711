"""The checks of function_vectors section 1 (nnsight basics): each fails on its stub, passes on
the exported solution, and rejects plausible wrong answers with a message that names the mistake."""

from __future__ import annotations

import pytest
import torch
from _check_suite import check_suite

from interpbook.checks import CheckFailed
from interpbook.checks.function_vectors import nnsight_basics as checks
from interpbook.solutions.function_vectors.nnsight_basics import (
    ablate_mlp_output,
    final_residuals,
    generate_words,
    patch_residual,
)

SOLUTIONS = {
    "final_residuals": final_residuals,
    "ablate_mlp_output": ablate_mlp_output,
    "patch_residual": patch_residual,
    "generate_words": generate_words,
}


test_check_fails_on_the_stub, test_check_passes_on_the_solution, test_every_check_is_tested = check_suite(
    checks, SOLUTIONS)


# --- final_residuals --------------------------------------------------------------------------

def residuals_block_input(lm, prompts):
    # Mistake: the input of each block (the residual stream *before* it), off by one layer.
    with lm.trace(prompts):
        out = torch.stack([block.input[:, -1] for block in lm.transformer.h], dim=1).save()
    return out


def residuals_position_zero(lm, prompts):
    # Mistake: position 0 (the <bos> token) instead of the final position.
    with lm.trace(prompts):
        out = torch.stack([block.output[:, 0] for block in lm.transformer.h], dim=1).save()
    return out


def residuals_after_ln_f(lm, prompts):
    # Mistake: copies transformers' hidden_states, whose last entry is after the final layer norm.
    with lm.trace(prompts):
        outs = [block.output[:, -1] for block in lm.transformer.h[:-1]] + [lm.transformer.ln_f.output[:, -1]]
        out = torch.stack(outs, dim=1).save()
    return out


@pytest.mark.parametrize("wrong, message", [
    (residuals_block_input, "inputs"),
    (residuals_position_zero, "position 0"),
    (residuals_after_ln_f, "ln_f"),
])
def test_final_residuals_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_final_residuals(wrong)


# --- ablate_mlp_output ------------------------------------------------------------------------

def ablate_every_position(lm, prompts, layer):
    # Mistake: zeroes the MLP output at every position, not just the final one.
    with lm.trace(prompts):
        lm.transformer.h[layer].mlp.output[:] = 0
        logits = lm.lm_head.output[:, -1].save()
    return logits


def ablate_next_layer(lm, prompts, layer):
    # Mistake: counts blocks from 1, so zeroes the MLP of the block after the one asked for.
    with lm.trace(prompts):
        lm.transformer.h[layer + 1].mlp.output[:, -1] = 0
        logits = lm.lm_head.output[:, -1].save()
    return logits


def ablate_attention(lm, prompts, layer):
    # Mistake: zeroes the attention output instead of the MLP's.
    with lm.trace(prompts):
        lm.transformer.h[layer].attn.output[0][:, -1] = 0
        logits = lm.lm_head.output[:, -1].save()
    return logits


def ablate_logits_before_edit(lm, prompts, layer):
    # Mistake: edits a saved copy, so the model never sees the change.
    with lm.trace(prompts):
        mlp = lm.transformer.h[layer].mlp.output.clone()
        mlp[:, -1] = 0
        logits = lm.lm_head.output[:, -1].save()
    return logits


@pytest.mark.parametrize("wrong, message", [
    (ablate_every_position, "every position"),
    (ablate_next_layer, "block 1"),
    (ablate_attention, "attention"),
    (ablate_logits_before_edit, "nothing was zeroed"),
])
def test_ablate_mlp_output_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_ablate_mlp_output(wrong)


# --- patch_residual ---------------------------------------------------------------------------

def patch_every_position(lm, source_prompts, target_prompts, layer):
    # Mistake: copies the source's whole residual stream, every position.
    with lm.trace(source_prompts):
        resid = lm.transformer.h[layer].output.save()
    with lm.trace(target_prompts):
        lm.transformer.h[layer].output[:] = resid
        logits = lm.lm_head.output[:, -1].save()
    return logits


def patch_saved_block_before(lm, source_prompts, target_prompts, layer):
    # Mistake: saves the *input* of block `layer` (the output of block layer - 1), sets its output.
    with lm.trace(source_prompts):
        resid = lm.transformer.h[layer].input[:, -1].save()
    with lm.trace(target_prompts):
        lm.transformer.h[layer].output[:, -1] = resid
        logits = lm.lm_head.output[:, -1].save()
    return logits


def patch_forgot_to_set(lm, source_prompts, target_prompts, layer):
    # Mistake: saves the source's activation but never puts it into the target run.
    with lm.trace(target_prompts):
        logits = lm.lm_head.output[:, -1].save()
    return logits


@pytest.mark.parametrize("wrong, message", [
    (patch_every_position, "every position"),
    (patch_saved_block_before, "saved the output of block 0 and set it after block 1"),
    (patch_forgot_to_set, "changed nothing"),
])
def test_patch_residual_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_patch_residual(wrong)


# --- generate_words ---------------------------------------------------------------------------

def generate_with_prompt(lm, prompt, n_words):
    # Mistake: returns the whole sequence, prompt included.
    with lm.generate(prompt, max_new_tokens=n_words, do_sample=False) as tracer:
        ids = tracer.result.save()
    return lm.tokenizer.convert_ids_to_tokens(ids[0].tolist())


def generate_one_short(lm, prompt, n_words):
    # Mistake: an off-by-one in the slice drops the last generated word.
    with lm.generate(prompt, max_new_tokens=n_words, do_sample=False) as tracer:
        ids = tracer.result.save()
    return lm.tokenizer.convert_ids_to_tokens(ids[0, -n_words:-1].tolist())


def generate_ids(lm, prompt, n_words):
    # Mistake: returns token ids, not words.
    with lm.generate(prompt, max_new_tokens=n_words, do_sample=False) as tracer:
        ids = tracer.result.save()
    return ids[0, -n_words:].tolist()


@pytest.mark.parametrize("wrong, message", [
    (generate_with_prompt, "prompt's words too"),
    (generate_one_short, "got 4 words"),
    (generate_ids, "list of strings"),
])
def test_generate_words_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_generate_words(wrong)
