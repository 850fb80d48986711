"""The checks of function_vectors section 3 (finding the function vector): each fails on its
stub, passes on the exported solution, and rejects plausible wrong answers with a message that
names the mistake."""

from __future__ import annotations

import pytest
import torch
from _check_suite import check_suite

from interpbook.checks import CheckFailed
from interpbook.checks.function_vectors import function_vector as checks
from interpbook.solutions.function_vectors.function_vector import (
    function_vector,
    head_outputs,
    patch_head,
    split_heads,
    top_heads,
)

SOLUTIONS = {
    "split_heads": split_heads,
    "head_outputs": head_outputs,
    "patch_head": patch_head,
    "top_heads": top_heads,
    "function_vector": function_vector,
}


test_check_fails_on_the_stub, test_check_passes_on_the_solution, test_every_check_is_tested = check_suite(
    checks, SOLUTIONS)


# --- split_heads ------------------------------------------------------------------------------

def split_heads_interleaved(z, n_head):
    # Mistake: reshape to [n, d_head, n_head] and transpose, so the heads interleave.
    return z.reshape(z.shape[0], -1, n_head).transpose(1, 2)


def test_split_heads_rejects_interleaved_heads():
    with pytest.raises(CheckFailed, match="interleaved"):
        checks.check_split_heads(split_heads_interleaved)


# --- head_outputs -----------------------------------------------------------------------------

def _final_z(lm, prompts):
    zs = []
    with lm.trace(prompts):
        for block in lm.transformer.h:
            zs.append(block.attn.c_proj.input[:, -1].save())
    return zs


def head_outputs_no_wo(lm, prompts):
    # Mistake: stops at the heads' z vectors, never projecting through W_O.
    return torch.stack([split_heads(z, lm.config.n_head) for z in _final_z(lm, prompts)], dim=1)


def head_outputs_transposed(lm, prompts):
    # Mistake: treats c_proj.weight as [out, in] (nn.Linear) and transposes it.
    n_head, outs = lm.config.n_head, []
    for block, z in zip(lm.transformer.h, _final_z(lm, prompts)):
        W = block.attn.c_proj.weight.T
        outs.append(torch.einsum("nhd,hdm->nhm", split_heads(z, n_head), W.reshape(n_head, -1, W.shape[-1])))
    return torch.stack(outs, dim=1)


def head_outputs_with_bias(lm, prompts):
    # Mistake: adds the c_proj bias to every head's output.
    out = head_outputs(lm, prompts)
    biases = torch.stack([block.attn.c_proj.bias for block in lm.transformer.h])  # [layer, d_model]
    return out + biases[None, :, None, :]


def head_outputs_interleaved(lm, prompts):
    # Mistake: splits z into interleaved heads but the weight into contiguous blocks.
    n_head, outs = lm.config.n_head, []
    for block, z in zip(lm.transformer.h, _final_z(lm, prompts)):
        W = block.attn.c_proj.weight
        zh = split_heads_interleaved(z, n_head)
        outs.append(torch.einsum("nhd,hdm->nhm", zh, W.reshape(n_head, -1, W.shape[-1])))
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("wrong, match", [
    (head_outputs_no_wo, "W_O"),
    (head_outputs_transposed, "without a transpose"),
    (head_outputs_with_bias, "bias to every head"),
    (head_outputs_interleaved, "differ|not what"),
])
def test_head_outputs_rejects_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_head_outputs(wrong)


# --- patch_head -------------------------------------------------------------------------------

def _head_rows(lm, layer, head):
    W = lm.transformer.h[layer].attn.c_proj.weight
    d_head = W.shape[0] // lm.config.n_head
    return slice(head * d_head, (head + 1) * d_head), W


def patch_head_all_positions(lm, prompts, answer_ids, target, layer, head):
    # Mistake: patches every position, not only the final one.
    rows, W = _head_rows(lm, layer, head)
    with lm.trace(prompts):
        attn = lm.transformer.h[layer].attn
        own = attn.c_proj.input[:, :, rows] @ W[rows]
        attn.output[0][:] += target[:, None] - own
        p = lm.lm_head.output[:, -1].softmax(-1)[torch.arange(len(prompts)), answer_ids].save()
    return p


def patch_head_whole_attention(lm, prompts, answer_ids, target, layer, head):
    # Mistake: overwrites the whole attention output instead of this head's part.
    with lm.trace(prompts):
        lm.transformer.h[layer].attn.output[0][:, -1] = target
        p = lm.lm_head.output[:, -1].softmax(-1)[torch.arange(len(prompts)), answer_ids].save()
    return p


def patch_head_log_probs(lm, prompts, answer_ids, target, layer, head):
    # Mistake: returns log-probabilities.
    return patch_head(lm, prompts, answer_ids, target, layer, head).log()


def patch_head_add_target(lm, prompts, answer_ids, target, layer, head):
    # Mistake: adds the target on top of the head's output instead of replacing it.
    with lm.trace(prompts):
        lm.transformer.h[layer].attn.output[0][:, -1] += target
        p = lm.lm_head.output[:, -1].softmax(-1)[torch.arange(len(prompts)), answer_ids].save()
    return p


@pytest.mark.parametrize("wrong, match", [
    (patch_head_all_positions, "final position"),
    (patch_head_whole_attention, "whole attention output"),
    (patch_head_log_probs, "log-probabilities"),
    (patch_head_add_target, "instead of replacing"),
])
def test_patch_head_rejects_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_patch_head(wrong)


# --- top_heads --------------------------------------------------------------------------------

def top_heads_column_major(cie, k):
    # Mistake: unravels the flat index column-major.
    idx = cie.flatten().argsort(descending=True)[:k]
    return [(int(i) % cie.shape[0], int(i) // cie.shape[0]) for i in idx]


def top_heads_ascending(cie, k):
    # Mistake: sorts ascending, so takes the smallest scores.
    idx = cie.flatten().argsort()[:k]
    return [(int(i) // cie.shape[1], int(i) % cie.shape[1]) for i in idx]


def top_heads_fixed_size(cie, k):
    # Mistake: hard-codes the model's 4 heads per layer.
    idx = cie.flatten().argsort(descending=True)[:k]
    return [(int(i) // 4, int(i) % 4) for i in idx]


@pytest.mark.parametrize("wrong, match", [
    (top_heads_column_major, "column-major"),
    (top_heads_ascending, "SMALLEST"),
    (top_heads_fixed_size, "top 4|shape"),
])
def test_top_heads_rejects_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_top_heads(wrong)


# --- function_vector --------------------------------------------------------------------------

def function_vector_mean(mean_outputs, heads):
    # Mistake: averages the chosen heads instead of summing them.
    return torch.stack([mean_outputs[layer, head] for layer, head in heads]).mean(0)


def function_vector_swapped(mean_outputs, heads):
    # Mistake: indexes [head, layer].
    return torch.stack([mean_outputs[head, layer] for layer, head in heads]).sum(0)


@pytest.mark.parametrize("wrong, match", [
    (function_vector_mean, "SUM"),
    (function_vector_swapped, r"\[head, layer\]"),
])
def test_function_vector_rejects_mistakes(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.check_function_vector(wrong)
