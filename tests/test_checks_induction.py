"""The induction chapter's checks reject the mistakes a learner would plausibly make.

tests/test_exercises.py already proves that each check fails on its stub and passes on its
solution (it runs the pages). Here each exercise gets one or more *wrong* answers, written as a
learner would write them, with a one-line comment naming the slip; the test pins both that the
check rejects it and that the message points at that slip. One test per section also runs the
exported solutions through the checks with the fixtures used here, so a wrong fixture shows up
as a failing sanity test rather than as a wrong answer that "passes"."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from transformer_lens import FactoredMatrix

from interpbook.checks import CheckFailed, leftover_hooks
from interpbook.checks.induction import finding_induction_heads as fih
from interpbook.checks.induction import hooks as hk
from interpbook.checks.induction import reverse_engineering as rev
from interpbook.checks.induction import transformerlens_basics as tlb
from interpbook.solutions.induction import finding_induction_heads as fih_sol
from interpbook.solutions.induction import hooks as hk_sol
from interpbook.solutions.induction import reverse_engineering as rev_sol
from interpbook.solutions.induction import transformerlens_basics as tlb_sol
from interpbook.solutions.transformer.inputs_and_outputs import next_token_log_probs
from interpbook.zoo import load_model


@pytest.fixture(scope="module")
def model():
    return load_model("attn-only-2l", device="cpu", profile="default")


@pytest.fixture(scope="module")
def cache(model):
    with torch.no_grad():
        _, cache = model.run_with_cache(model.to_tokens("The cat sat on the mat. The cat sat on the mat."))
    return cache


def _causal(scores: torch.Tensor) -> torch.Tensor:
    """Correct masking and softmax, for wrong answers whose slip is elsewhere."""
    n = scores.shape[-1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


# ============================================================================================
# Section 1: TransformerLens basics


def test_basics_solutions_pass(model, cache):
    tlb.check_next_token_accuracy(tlb_sol.next_token_accuracy)
    tlb.check_resid_post_from_parts(tlb_sol.resid_post_from_parts, model, cache)
    tlb.check_attention_pattern(tlb_sol.attention_pattern, cache)


# --- next_token_accuracy ---


def next_token_accuracy_no_shift(logits, tokens):
    # Mistake: compares each prediction with the token at the same position, not the next one.
    return (logits.argmax(-1) == tokens).float().mean().item()


def next_token_accuracy_rolled(logits, tokens):
    # Mistake: shifts with roll, so the last position (which has no next token) is counted too.
    return (logits.argmax(-1) == tokens.roll(-1, dims=1)).float().mean().item()


def next_token_accuracy_first_sequence(logits, tokens):
    # Mistake: only looks at the first sequence of the batch.
    return (logits[0, :-1].argmax(-1) == tokens[0, 1:]).float().mean().item()


def test_next_token_accuracy_rejects_no_shift():
    with pytest.raises(CheckFailed, match=r"token at the \*same\* position instead of the next one"):
        tlb.check_next_token_accuracy(next_token_accuracy_no_shift)


def test_next_token_accuracy_rejects_counting_last_position():
    with pytest.raises(CheckFailed, match=r"last position was counted.*logits\[:, :-1\] with tokens\[:, 1:\]"):
        tlb.check_next_token_accuracy(next_token_accuracy_rolled)


def test_next_token_accuracy_rejects_first_sequence_only():
    with pytest.raises(CheckFailed, match="average over every position of every sequence"):
        tlb.check_next_token_accuracy(next_token_accuracy_first_sequence)


# --- resid_post_from_parts ---


def resid_post_without_attn_out(cache, layer):
    # Mistake: forgets the attention output, returning the stream the block read.
    return cache[f"blocks.{layer}.hook_resid_pre"]


def resid_post_from_embeddings(cache, layer):
    # Mistake: rebuilds the stream from the embeddings, leaving out the earlier layers' outputs.
    return cache["hook_embed"] + cache["hook_pos_embed"] + cache[f"blocks.{layer}.hook_attn_out"]


def test_resid_post_rejects_missing_attn_out(model, cache):
    with pytest.raises(CheckFailed, match="adds the attention output to the residual stream"):
        tlb.check_resid_post_from_parts(resid_post_without_attn_out, model, cache)


def test_resid_post_rejects_forgotten_earlier_layers(model, cache):
    with pytest.raises(CheckFailed, match=r"resid_post_from_parts\(cache, 1\).*residual stream it read"):
        tlb.check_resid_post_from_parts(resid_post_from_embeddings, model, cache)


# --- attention_pattern ---


def attention_pattern_no_mask(q, k):
    # Mistake: forgets the causal mask, so queries see later keys.
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    return scores.softmax(-1)


def attention_pattern_no_scale(q, k):
    # Mistake: no 1/sqrt(d_head) scaling of the scores.
    return _causal(torch.einsum("bqhd,bkhd->bhqk", q, k))


def attention_pattern_mask_after_softmax(q, k):
    # Mistake: zeroes the future after the softmax, so the rows no longer sum to 1.
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    return torch.tril(scores.softmax(-1))


def attention_pattern_softmax_over_queries(q, k):
    # Mistake: softmax over the query axis (dim=-2) instead of the key axis.
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    n = scores.shape[-1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-2)


def test_attention_pattern_rejects_missing_mask(cache):
    with pytest.raises(CheckFailed, match=r"mask the future.*-inf \*before\* the softmax"):
        tlb.check_attention_pattern(attention_pattern_no_mask, cache)


def test_attention_pattern_rejects_missing_scale(cache):
    with pytest.raises(CheckFailed, match=r"layer-0 pattern.*divide the scores by sqrt\(d_head\)"):
        tlb.check_attention_pattern(attention_pattern_no_scale, cache)


def test_attention_pattern_rejects_mask_after_softmax(cache):
    with pytest.raises(CheckFailed, match=r"2-token pattern.*-inf \*before\* the softmax"):
        tlb.check_attention_pattern(attention_pattern_mask_after_softmax, cache)


def test_attention_pattern_rejects_softmax_over_queries(cache):
    with pytest.raises(CheckFailed, match=r"2-token pattern.*key axis \(dim=-1\)"):
        tlb.check_attention_pattern(attention_pattern_softmax_over_queries, cache)


# ============================================================================================
# Section 2: Finding induction heads


def test_finding_solutions_pass(model):
    fih.check_current_token_scores(fih_sol.current_token_scores)
    fih.check_prev_token_scores(fih_sol.prev_token_scores)
    fih.check_first_token_scores(fih_sol.first_token_scores)
    fih.check_generate_repeated_tokens(fih_sol.generate_repeated_tokens, model)
    fih.check_induction_scores(fih_sol.induction_scores)


# --- current_token_scores ---


def current_token_scores_with_query_0(pattern):
    # Mistake: includes query 0, which can only attend to itself.
    return pattern.diagonal(dim1=-2, dim2=-1).mean(dim=(0, 2))


def current_token_scores_batch_sum(pattern):
    # Mistake: sums over the batch instead of averaging.
    return pattern.diagonal(dim1=-2, dim2=-1)[..., 1:].mean(-1).sum(0)


def test_current_token_scores_rejects_query_0():
    with pytest.raises(CheckFailed, match=r"first-token \(BOS\) head: yours 0\.167.*leave it out"):
        fih.check_current_token_scores(current_token_scores_with_query_0)


def test_current_token_scores_rejects_batch_sum():
    with pytest.raises(CheckFailed, match="Average over the batch axis"):
        fih.check_current_token_scores(current_token_scores_batch_sum)


# --- prev_token_scores ---


def prev_token_scores_upper_stripe(pattern):
    # Mistake: offset=+1 takes the stripe above the diagonal (the *next* token, always masked).
    return pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, 2))


def prev_token_scores_wrong_axes(pattern):
    # Mistake: averages over batch and head instead of batch and query position.
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 1))


def test_prev_token_scores_rejects_offset_plus_1():
    with pytest.raises(CheckFailed, match=r"previous-token head: yours 0\.000, expected 1\.000.*offset=-1"):
        fih.check_prev_token_scores(prev_token_scores_upper_stripe)


def test_prev_token_scores_rejects_wrong_mean_axes():
    with pytest.raises(CheckFailed, match=r"shape \[5\]; expected \[4\] = \[head\]"):
        fih.check_prev_token_scores(prev_token_scores_wrong_axes)


# --- first_token_scores ---


def first_token_scores_with_query_0(pattern):
    # Mistake: includes query 0, which attends to position 0 in every head.
    return pattern[:, :, :, 0].mean(dim=(0, 2))


def first_token_scores_first_row(pattern):
    # Mistake: takes the first *row* (attention from query 0) instead of the first column.
    return pattern[:, :, 0, :].mean(dim=(0, 2))


def test_first_token_scores_rejects_query_0():
    with pytest.raises(CheckFailed, match=r"current-token head: yours 0\.167.*query positions 1 onwards"):
        fih.check_first_token_scores(first_token_scores_with_query_0)


def test_first_token_scores_rejects_first_row():
    with pytest.raises(CheckFailed, match=r"first column of each pattern"):
        fih.check_first_token_scores(first_token_scores_first_row)


# --- generate_repeated_tokens ---


def _bos(model, batch):
    return torch.full((batch, 1), model.tokenizer.bos_token_id, dtype=torch.long)


def generate_repeated_tokens_low_0(model, seq_len, batch=1, seed=0):
    # Mistake: draws from 0, so special tokens (BOS, EOS, PAD) can land inside the sequence.
    block = torch.randint(0, model.cfg.d_vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed))
    return torch.cat([_bos(model, batch), block, block], dim=1)


def generate_repeated_tokens_same_rows(model, seq_len, batch=1, seed=0):
    # Mistake: draws one block and repeats it for every row of the batch.
    low = 1 + max(model.tokenizer.all_special_ids)
    block = torch.randint(low, model.cfg.d_vocab, (1, seq_len), generator=torch.Generator().manual_seed(seed))
    block = block.expand(batch, -1)
    return torch.cat([_bos(model, batch), block, block], dim=1)


def generate_repeated_tokens_two_blocks(model, seq_len, batch=1, seed=0):
    # Mistake: draws the second half afresh instead of repeating the first.
    g = torch.Generator().manual_seed(seed)
    low = 1 + max(model.tokenizer.all_special_ids)
    halves = [torch.randint(low, model.cfg.d_vocab, (batch, seq_len), generator=g) for _ in range(2)]
    return torch.cat([_bos(model, batch), *halves], dim=1)


def generate_repeated_tokens_global_rng(model, seq_len, batch=1, seed=0):
    # Mistake: ignores the seed and draws from the global random state.
    low = 1 + max(model.tokenizer.all_special_ids)
    block = torch.randint(low, model.cfg.d_vocab, (batch, seq_len))
    return torch.cat([_bos(model, batch), block, block], dim=1)


def generate_repeated_tokens_no_bos(model, seq_len, batch=1, seed=0):
    # Mistake: forgets to prepend BOS.
    low = 1 + max(model.tokenizer.all_special_ids)
    block = torch.randint(low, model.cfg.d_vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed))
    return torch.cat([block, block], dim=1)


def test_generate_repeated_tokens_rejects_special_tokens(model):
    with pytest.raises(CheckFailed, match=r"should be ordinary tokens.*Pass `low`"):
        fih.check_generate_repeated_tokens(generate_repeated_tokens_low_0, model)


def test_generate_repeated_tokens_rejects_same_block_per_row(model):
    with pytest.raises(CheckFailed, match="every sequence in the batch is the same"):
        fih.check_generate_repeated_tokens(generate_repeated_tokens_same_rows, model)


def test_generate_repeated_tokens_rejects_unrepeated_second_half(model):
    with pytest.raises(CheckFailed, match="Draw one random block and concatenate it twice"):
        fih.check_generate_repeated_tokens(generate_repeated_tokens_two_blocks, model)


def test_generate_repeated_tokens_rejects_ignored_seed(model):
    with pytest.raises(CheckFailed, match=r"two calls with seed=0 gave different tokens"):
        fih.check_generate_repeated_tokens(generate_repeated_tokens_global_rng, model)


def test_generate_repeated_tokens_rejects_missing_bos(model):
    with pytest.raises(CheckFailed, match=r"shape \[4, 100\]; expected \[4, 101\] = \[batch, 1 \+ 2 \* seq_len\]"):
        fih.check_generate_repeated_tokens(generate_repeated_tokens_no_bos, model)


# --- induction_scores ---


def induction_scores_earlier_copy(pattern, seq_len):
    # Mistake: key q - seq_len (the earlier copy itself) instead of q - seq_len + 1.
    queries = torch.arange(seq_len + 1, 2 * seq_len + 1)
    return pattern[:, :, queries, queries - seq_len].mean(dim=(0, 2))


def induction_scores_forgot_bos(pattern, seq_len):
    # Mistake: forgets the BOS offset, so the queries start at seq_len (the first copy's last token).
    queries = torch.arange(seq_len, 2 * seq_len)
    return pattern[:, :, queries, queries - seq_len + 1].mean(dim=(0, 2))


def induction_scores_all_queries(pattern, seq_len):
    # Mistake: averages the stripe over every query, the first copy included.
    return pattern.diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1).mean(dim=(0, 2))


def test_induction_scores_rejects_earlier_copy_key():
    with pytest.raises(CheckFailed, match=r"attends to the earlier copy itself.*q - seq_len \+ 1"):
        fih.check_induction_scores(induction_scores_earlier_copy)


def test_induction_scores_rejects_forgotten_bos():
    with pytest.raises(CheckFailed, match=r"induction head: yours 0\.800.*query positions 6\.\.10 \(the second copy\)"):
        fih.check_induction_scores(induction_scores_forgot_bos)


def test_induction_scores_rejects_first_copy_queries():
    with pytest.raises(CheckFailed, match=r"query positions 6\.\.10 \(the second copy\) only"):
        fih.check_induction_scores(induction_scores_all_queries)


# ============================================================================================
# Section 3: Hooks


def test_hooks_solutions_pass(model):
    hk.check_induction_score_hook(hk_sol.induction_score_hook)
    hk.check_ablate_head_hook(hk_sol.ablate_head_hook)
    hk.check_loss_per_head_ablation(hk_sol.loss_per_head_ablation, model)
    hk.check_head_outputs(hk_sol.head_outputs)
    hk.check_logit_attribution(hk_sol.logit_attribution)


# --- induction_score_hook ---


def induction_score_hook_rebinds(pattern, hook, scores, seq_len):
    # Mistake: rebinds the local name `scores` instead of writing into the caller's tensor.
    scores = scores.clone()
    scores[hook.layer()] = fih_sol.induction_scores(pattern, seq_len)


def induction_score_hook_fixed_row(pattern, hook, scores, seq_len):
    # Mistake: hard-codes row 1 (where the induction heads are) instead of hook.layer().
    scores[1] = fih_sol.induction_scores(pattern, seq_len)


def induction_score_hook_returns(pattern, hook, scores, seq_len):
    # Mistake: returns the scores, which would replace the pattern in the forward pass.
    scores[hook.layer()] = fih_sol.induction_scores(pattern, seq_len)
    return scores


def induction_score_hook_earlier_copy(pattern, hook, scores, seq_len):
    # Mistake: key q - seq_len instead of q - seq_len + 1.
    queries = torch.arange(seq_len + 1, 2 * seq_len + 1)
    scores[hook.layer()] = pattern[:, :, queries, queries - seq_len].mean(dim=(0, 2))


def test_induction_score_hook_rejects_rebinding():
    with pytest.raises(CheckFailed, match=r"`scores\[1\]` is unchanged.*rebinding the name `scores`"):
        hk.check_induction_score_hook(induction_score_hook_rebinds)


def test_induction_score_hook_rejects_fixed_row():
    with pytest.raises(CheckFailed, match=r"`scores\[2\]` is unchanged.*scores\[hook\.layer\(\)\]"):
        hk.check_induction_score_hook(induction_score_hook_fixed_row)


def test_induction_score_hook_rejects_returning_scores():
    with pytest.raises(CheckFailed, match=r"returned Tensor, not None.*should return None"):
        hk.check_induction_score_hook(induction_score_hook_returns)


def test_induction_score_hook_rejects_earlier_copy_key():
    with pytest.raises(CheckFailed, match=r"scores\[1\].*to key q - seq_len \+ 1"):
        hk.check_induction_score_hook(induction_score_hook_earlier_copy)


# --- ablate_head_hook ---


def ablate_head_hook_position_axis(z, hook, head):
    # Mistake: zeroes the wrong axis, z[:, head] (a position) instead of z[:, :, head].
    z[:, head] = 0.0
    return z


def ablate_head_hook_last_axis(z, hook, head):
    # Mistake: z[..., head] indexes d_head, not the head axis.
    z[..., head] = 0.0
    return z


def ablate_head_hook_lost_copy(z, hook, head):
    # Mistake: ablates a copy and forgets to return it, so the forward pass keeps the original z.
    z = z.clone()
    z[:, :, head] = 0.0


def test_ablate_head_hook_rejects_position_axis():
    with pytest.raises(CheckFailed, match="the head axis is the third one"):
        hk.check_ablate_head_hook(ablate_head_hook_position_axis)


def test_ablate_head_hook_rejects_d_head_axis():
    with pytest.raises(CheckFailed, match=r"z\[:, :, 2, :\] is not all zero.*head axis is the third one"):
        hk.check_ablate_head_hook(ablate_head_hook_last_axis)


def test_ablate_head_hook_rejects_unreturned_copy():
    with pytest.raises(CheckFailed, match=r"z\[:, :, 2, :\] is not all zero"):
        hk.check_ablate_head_hook(ablate_head_hook_lost_copy)


# --- loss_per_head_ablation ---


def loss_per_head_ablation_whole_sequence(model, tokens, seq_len):
    # Mistake: measures the loss over the whole sequence instead of the second copy.
    def loss(logits):
        return -next_token_log_probs(logits, tokens).mean()

    clean = loss(model(tokens))
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = functools.partial(hk_sol.ablate_head_hook, head=head)
            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
            out[layer, head] = loss(logits) - clean
    return out


def loss_per_head_ablation_leaves_hooks(model, tokens, seq_len):
    # Mistake: adds hooks with model.add_hook and never removes them.
    model.add_hook("blocks.0.attn.hook_z", functools.partial(hk_sol.ablate_head_hook, head=0))
    return torch.zeros(model.cfg.n_layers, model.cfg.n_heads)


def test_loss_per_head_ablation_rejects_whole_sequence_loss(model):
    with pytest.raises(CheckFailed, match="match the loss over the whole sequence. Measure only the second copy"):
        hk.check_loss_per_head_ablation(loss_per_head_ablation_whole_sequence, model)


def test_loss_per_head_ablation_rejects_leftover_hooks(model):
    try:
        with pytest.raises(CheckFailed, match=r"hooks were still attached.*model\.reset_hooks\(\)"):
            hk.check_loss_per_head_ablation(loss_per_head_ablation_leaves_hooks, model)
        assert not leftover_hooks(model), "the check should have reset the learner's hooks"
    finally:
        model.reset_hooks()


# --- head_outputs ---


def head_outputs_summed(z, W_O):
    # Mistake: sums over the heads, giving the layer's output instead of one output per head.
    return torch.einsum("bphd,hdm->bpm", z, W_O)


def head_outputs_all_w_o(z, W_O):
    # Mistake: a new letter for W_O's head axis, so every head goes through the sum of all heads' W_O.
    return torch.einsum("bphd,gdm->bphm", z, W_O)


def test_head_outputs_rejects_sum_over_heads():
    with pytest.raises(CheckFailed, match=r"shape \[1, 2, 3\]; expected \[1, 2, 3, 3\] = \[batch pos head d_model\]"):
        hk.check_head_outputs(head_outputs_summed)


def test_head_outputs_rejects_mixed_heads():
    with pytest.raises(CheckFailed, match=r"W_O\[h\].*keep the head axis"):
        hk.check_head_outputs(head_outputs_all_w_o)


# --- logit_attribution ---


def _components(embed, pos_embed, head_out):
    return torch.cat([embed[:, None], pos_embed[:, None], head_out], 1)


def logit_attribution_own_token(embed, pos_embed, head_out, W_U, tokens):
    # Mistake: scores each position against its own token instead of the next one.
    return torch.einsum("pcm,mp->pc", _components(embed, pos_embed, head_out)[:-1], W_U[:, tokens[:-1]])


def logit_attribution_swapped_columns(embed, pos_embed, head_out, W_U, tokens):
    # Mistake: puts the positional embedding column before the token embedding.
    comps = torch.cat([pos_embed[:, None], embed[:, None], head_out], 1)
    return torch.einsum("pcm,mp->pc", comps[:-1], W_U[:, tokens[1:]])


def logit_attribution_keeps_last(embed, pos_embed, head_out, W_U, tokens):
    # Mistake: keeps the last position (which predicts nothing), pairing it with the first token.
    return torch.einsum("pcm,mp->pc", _components(embed, pos_embed, head_out), W_U[:, tokens.roll(-1)])


def test_logit_attribution_rejects_own_token():
    with pytest.raises(CheckFailed, match=r"against its own token.*W_U\[:, tokens\[1:\]\]"):
        hk.check_logit_attribution(logit_attribution_own_token)


def test_logit_attribution_rejects_swapped_columns():
    with pytest.raises(CheckFailed, match=r"columns are \[embed, pos_embed, head 0"):
        hk.check_logit_attribution(logit_attribution_swapped_columns)


def test_logit_attribution_rejects_last_position():
    with pytest.raises(CheckFailed, match=r"shape \[3, 3\]; expected \[2, 3\] = \[pos-1 n_components\]"):
        hk.check_logit_attribution(logit_attribution_keeps_last)


# ============================================================================================
# Section 4: Reverse-engineering the circuit


def test_reverse_engineering_solutions_pass(model):
    rev.check_full_ov_circuit(rev_sol.full_ov_circuit, model)
    rev.check_top_1_copy_accuracy(rev_sol.top_1_copy_accuracy)
    rev.check_pos_attention_pattern(rev_sol.pos_attention_pattern)
    rev.check_decompose_k(rev_sol.decompose_k)
    rev.check_composition_score(rev_sol.composition_score)
    rev.check_k_composition_scores(rev_sol.k_composition_scores, model)


# --- full_ov_circuit ---


def full_ov_circuit_head_layer(model, layer, head):
    # Mistake: indexes the OV circuit [head, layer] instead of [layer, head].
    return model.W_E @ model.OV[head, layer] @ model.W_U


def full_ov_circuit_dense(model, layer, head):
    # Mistake: multiplies the factors out into a dense d_vocab x d_vocab tensor.
    return model.W_E @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U


def full_ov_circuit_no_unembed(model, layer, head):
    # Mistake: stops at the residual stream, forgetting W_U.
    return model.W_E @ model.OV[layer, head]


def test_full_ov_circuit_rejects_head_layer_index(model):
    with pytest.raises(CheckFailed, match=r"index \[layer, head\] \(not \[head, layer\]\)"):
        rev.check_full_ov_circuit(full_ov_circuit_head_layer, model)


def test_full_ov_circuit_rejects_dense_matrix(model):
    with pytest.raises(CheckFailed, match="should be a FactoredMatrix, got Tensor"):
        rev.check_full_ov_circuit(full_ov_circuit_dense, model)


def test_full_ov_circuit_rejects_missing_unembed(model):
    with pytest.raises(CheckFailed, match=r"has shape \[7, 5\]; expected \[7, 7\]"):
        rev.check_full_ov_circuit(full_ov_circuit_no_unembed, model)


# --- top_1_copy_accuracy ---


def top_1_copy_accuracy_columns(full_ov, batch_size=256):
    # Mistake: argmax over dim=0 (each column) instead of each row.
    full = full_ov.AB
    return (full.argmax(dim=0) == torch.arange(full.shape[0])).float().mean().item()


def top_1_copy_accuracy_no_offset(full_ov, batch_size=256):
    # Mistake: compares each batch's argmax with 0..batch-1, forgetting the batch's start row.
    hits = 0
    for start in range(0, full_ov.ldim, batch_size):
        rows = full_ov[start : start + batch_size].AB
        hits += int((rows.argmax(-1) == torch.arange(rows.shape[0])).sum())
    return hits / full_ov.ldim


def test_top_1_copy_accuracy_rejects_columns():
    with pytest.raises(CheckFailed, match=r"argmax over each \*row\*.*dim=-1"):
        rev.check_top_1_copy_accuracy(top_1_copy_accuracy_columns)


def test_top_1_copy_accuracy_rejects_missing_batch_offset():
    with pytest.raises(CheckFailed, match=r"1000 x 1000.*its own index start \+ i"):
        rev.check_top_1_copy_accuracy(top_1_copy_accuracy_no_offset)


# --- pos_attention_pattern ---


def pos_attention_pattern_no_mask(W_pos, W_Q, W_K):
    # Mistake: forgets the causal mask.
    return ((W_pos @ W_Q) @ (W_pos @ W_K).T / math.sqrt(W_Q.shape[-1])).softmax(-1)


def pos_attention_pattern_no_scale(W_pos, W_Q, W_K):
    # Mistake: no 1/sqrt(d_head) scaling.
    return _causal((W_pos @ W_Q) @ (W_pos @ W_K).T)


def pos_attention_pattern_d_model_scale(W_pos, W_Q, W_K):
    # Mistake: scales by 1/sqrt(d_model) (W_pos's width) instead of 1/sqrt(d_head).
    return _causal((W_pos @ W_Q) @ (W_pos @ W_K).T / math.sqrt(W_pos.shape[-1]))


def pos_attention_pattern_keys_by_queries(W_pos, W_Q, W_K):
    # Mistake: keys @ queries.T, so rows are keys and columns queries.
    return _causal((W_pos @ W_K) @ (W_pos @ W_Q).T / math.sqrt(W_Q.shape[-1]))


def test_pos_attention_pattern_rejects_missing_mask():
    with pytest.raises(CheckFailed, match=r"all-zero W_pos.*mask the future \(j > i\)"):
        rev.check_pos_attention_pattern(pos_attention_pattern_no_mask)


def test_pos_attention_pattern_rejects_missing_scale():
    with pytest.raises(CheckFailed, match=r"divided by sqrt\(d_head\)"):
        rev.check_pos_attention_pattern(pos_attention_pattern_no_scale)


def test_pos_attention_pattern_rejects_d_model_scale():
    with pytest.raises(CheckFailed, match=r"d_head = 9.*sqrt\(W_Q\.shape\[-1\]\) = 3, not sqrt\(d_model\)"):
        rev.check_pos_attention_pattern(pos_attention_pattern_d_model_scale)


def test_pos_attention_pattern_rejects_swapped_query_key():
    with pytest.raises(CheckFailed, match="which axis is the query and which the key"):
        rev.check_pos_attention_pattern(pos_attention_pattern_keys_by_queries)


# --- decompose_k ---


def decompose_k_summed(components, W_K):
    # Mistake: sums the components first, giving the whole keys instead of one part per component.
    return components.sum(0) @ W_K


def decompose_k_scaled(components, W_K):
    # Mistake: carries the attention scores' 1/sqrt(d_head) over to the keys.
    return components @ W_K / math.sqrt(W_K.shape[-1])


def test_decompose_k_rejects_summed_components():
    with pytest.raises(CheckFailed, match=r"shape \[7, 3\]; expected \[5, 7, 3\] = \[component pos d_head\]"):
        rev.check_decompose_k(decompose_k_summed)


def test_decompose_k_rejects_scaling():
    with pytest.raises(CheckFailed, match=r"sum over components of your keys.*no 1/sqrt\(d_head\) scaling"):
        rev.check_decompose_k(decompose_k_scaled)


# --- composition_score ---


def _fro(M):
    return M.norm() if isinstance(M, FactoredMatrix) else torch.linalg.matrix_norm(M)


def composition_score_one_norm(W_A, W_B):
    # Mistake: normalises by ||W_A|| only, forgetting ||W_B||.
    return _fro(W_A @ W_B) / _fro(W_A)


def composition_score_unnormalised(W_A, W_B):
    # Mistake: returns ||W_A W_B||_F with no normalisation, so the score depends on the scales.
    return _fro(W_A @ W_B)


def composition_score_reversed(W_A, W_B):
    # Mistake: multiplies in the wrong order, W_B @ W_A.
    return _fro(W_B @ W_A) / (_fro(W_A) * _fro(W_B))


def composition_score_spectral(W_A, W_B):
    # Mistake: the spectral norm (ord=2) instead of the Frobenius norm.
    norm = lambda M: torch.linalg.matrix_norm(M.AB if isinstance(M, FactoredMatrix) else M, ord=2)
    return norm(W_A @ W_B) / (norm(W_A) * norm(W_B))


def test_composition_score_rejects_one_norm():
    with pytest.raises(CheckFailed, match="divide by the product of both norms"):
        rev.check_composition_score(composition_score_one_norm)


def test_composition_score_rejects_missing_normalisation():
    with pytest.raises(CheckFailed, match=r"got 2\.0000.*divide by the product of both norms"):
        rev.check_composition_score(composition_score_unnormalised)


def test_composition_score_rejects_reversed_product():
    with pytest.raises(CheckFailed, match=r"got 0\. Is the product W_A @ W_B, in that order"):
        rev.check_composition_score(composition_score_reversed)


def test_composition_score_rejects_spectral_norm():
    with pytest.raises(CheckFailed, match="Use the Frobenius norm"):
        rev.check_composition_score(composition_score_spectral)


# --- k_composition_scores ---


def k_composition_scores_q(model):
    # Mistake: Q-composition, OV @ QK without the transpose.
    n = model.cfg.n_heads
    return torch.tensor([[float(rev_sol.composition_score(model.OV[0, a], model.QK[1, b])) for b in range(n)]
                         for a in range(n)])


def k_composition_scores_transposed(model):
    # Mistake: fills [layer-1 head, layer-0 head], the transpose of the asked-for layout.
    n = model.cfg.n_heads
    return torch.tensor([[float(rev_sol.composition_score(model.OV[0, a], model.QK[1, b].T)) for a in range(n)]
                         for b in range(n)])


def test_k_composition_scores_rejects_q_composition(model):
    with pytest.raises(CheckFailed, match=r"that is Q-composition.*transpose of layer 1's QK"):
        rev.check_k_composition_scores(k_composition_scores_q, model)


def test_k_composition_scores_rejects_transposed_layout(model):
    with pytest.raises(CheckFailed, match=r"Row a is layer-0 head a, column b is layer-1 head b"):
        rev.check_k_composition_scores(k_composition_scores_transposed, model)
