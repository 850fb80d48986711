"""The transformer-from-scratch chapter's checks reject the mistakes a learner would plausibly make.

tests/test_exercises.py proves that each check fails on its stub and passes on its solution (it
runs the pages). Here each exercise gets one or more *wrong* answers, written as a learner would
write them, with a one-line comment naming the slip; each test pins that the check rejects it
with a message that points at that slip. One test per section runs the exported solutions
through the checks, so a wrong fixture shows up as a failing sanity test."""

from __future__ import annotations

import math

import einops
import pytest
import torch
import torch.nn.functional as F

from interpbook.checks import CheckFailed
from interpbook.checks.transformer import building_blocks as bb
from interpbook.checks.transformer import inputs_and_outputs as io
from interpbook.checks.transformer import sampling as sp
from interpbook.checks.transformer import training as training_checks
from interpbook.solutions.transformer import building_blocks as bb_sol
from interpbook.solutions.transformer import inputs_and_outputs as io_sol
from interpbook.solutions.transformer import sampling as sp_sol
from interpbook.solutions.transformer import training as training_sol
from interpbook.zoo import load_model


@pytest.fixture(scope="module")
def gpt_mini():
    return load_model("gpt-mini", device="cpu", shipped=True)


def _subclass(base, **methods):
    return type(base.__name__, (base,), methods)


# ============================================================================================
# Section 1: Inputs and outputs


def test_inputs_and_outputs_solutions_pass(gpt_mini):
    io.check_next_token_log_probs(io_sol.next_token_log_probs)
    io.check_unigram_log_probs(io_sol.unigram_log_probs)
    io.check_decompose_residual(io_sol.decompose_residual, gpt_mini)
    io.check_logit_lens(io_sol.logit_lens, gpt_mini)


def test_next_token_log_probs_rejects_unshifted_targets():
    def next_token_log_probs(logits, tokens):
        # Mistake: reads each position's own token instead of the next one.
        return logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, :-1, None])[..., 0]

    with pytest.raises(CheckFailed, match="own token"):
        io.check_next_token_log_probs(next_token_log_probs)


def test_next_token_log_probs_rejects_raw_logits():
    def next_token_log_probs(logits, tokens):
        # Mistake: gathers the logits themselves, never normalised.
        return logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]

    with pytest.raises(CheckFailed, match="raw logits"):
        io.check_next_token_log_probs(next_token_log_probs)


def test_next_token_log_probs_rejects_softmax_over_positions():
    def next_token_log_probs(logits, tokens):
        # Mistake: log_softmax over dim 1, the position axis.
        return logits.log_softmax(1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]

    with pytest.raises(CheckFailed, match="position axis"):
        io.check_next_token_log_probs(next_token_log_probs)


def test_unigram_log_probs_rejects_missing_smoothing():
    def unigram_log_probs(stream, d_vocab):
        # Mistake: no add-one smoothing, so unseen tokens get log 0 = -inf.
        counts = torch.bincount(stream, minlength=d_vocab).float()
        return (counts / counts.sum()).log()

    with pytest.raises(CheckFailed, match="add-one smoothing"):
        io.check_unigram_log_probs(unigram_log_probs)


def test_unigram_log_probs_rejects_wrong_normaliser():
    def unigram_log_probs(stream, d_vocab):
        # Mistake: smooths the counts but still divides by len(stream).
        counts = torch.bincount(stream, minlength=d_vocab).float() + 1
        return (counts / len(stream)).log()

    with pytest.raises(CheckFailed, match="sum to"):
        io.check_unigram_log_probs(unigram_log_probs)


def test_decompose_residual_rejects_running_totals(gpt_mini):
    def decompose_residual(cache, n_layers):
        # Mistake: stacks the stream after each piece (resid_mid/resid_post), not what was added.
        embed = cache["hook_embed"]
        pieces = [embed, cache["hook_pos_embed"].expand_as(embed)]
        for layer in range(n_layers):
            pieces += [cache[f"blocks.{layer}.hook_resid_mid"], cache[f"blocks.{layer}.hook_resid_post"]]
        return torch.stack(pieces)

    with pytest.raises(CheckFailed, match="running totals"):
        io.check_decompose_residual(decompose_residual, gpt_mini)


def test_decompose_residual_rejects_missing_position_embedding(gpt_mini):
    def decompose_residual(cache, n_layers):
        # Mistake: forgets the position embedding and pads with zeros to keep the shape.
        embed = cache["hook_embed"]
        pieces = [embed, torch.zeros_like(embed)]
        for layer in range(n_layers):
            pieces += [cache[f"blocks.{layer}.hook_attn_out"], cache[f"blocks.{layer}.hook_mlp_out"]]
        return torch.stack(pieces)

    with pytest.raises(CheckFailed, match="position embedding"):
        io.check_decompose_residual(decompose_residual, gpt_mini)


def test_decompose_residual_rejects_wrong_order(gpt_mini):
    def decompose_residual(cache, n_layers):
        # Mistake: all attention outputs first, then all MLP outputs.
        embed = cache["hook_embed"]
        pieces = [embed, cache["hook_pos_embed"].expand_as(embed)]
        pieces += [cache[f"blocks.{layer}.hook_attn_out"] for layer in range(n_layers)]
        pieces += [cache[f"blocks.{layer}.hook_mlp_out"] for layer in range(n_layers)]
        return torch.stack(pieces)

    with pytest.raises(CheckFailed, match="another order"):
        io.check_decompose_residual(decompose_residual, gpt_mini)


def test_logit_lens_rejects_missing_layer_norm(gpt_mini):
    def logit_lens(model, resid):
        # Mistake: unembeds the raw stream, skipping the final LayerNorm.
        return model.unembed(resid)

    with pytest.raises(CheckFailed, match="ln_final first"):
        io.check_logit_lens(logit_lens, gpt_mini)


def test_logit_lens_rejects_normalising_over_positions(gpt_mini):
    def logit_lens(model, resid):
        # Mistake: writes the LayerNorm by hand, centring and scaling over dim 1 (positions).
        x = (resid - resid.mean(1, keepdim=True)) / (resid.var(1, keepdim=True, unbiased=False) + 1e-5).sqrt()
        return model.unembed(x)

    with pytest.raises(CheckFailed, match="logit_lens on the final residual stream"):
        io.check_logit_lens(logit_lens, gpt_mini)


# ============================================================================================
# Section 2: Building blocks


def test_building_blocks_solutions_pass(gpt_mini):
    bb.check_layer_norm(bb_sol.LayerNorm, gpt_mini)
    bb.check_embed(bb_sol.Embed, gpt_mini)
    bb.check_pos_embed(bb_sol.PosEmbed, gpt_mini)
    bb.check_mask_scores(bb_sol.mask_scores)
    bb.check_attention(bb_sol.Attention, gpt_mini)
    bb.check_mlp(bb_sol.MLP, gpt_mini)
    bb.check_transformer_block(bb_sol.TransformerBlock, gpt_mini)
    bb.check_unembed(bb_sol.Unembed, gpt_mini)
    bb.check_gpt(bb_sol.GPT, gpt_mini)


def _ln_unbiased(self, x):
    # Mistake: torch's default (unbiased) standard deviation, and eps outside the root.
    centred = x - x.mean(-1, keepdim=True)
    return centred / centred.std(-1, keepdim=True) * self.w + self.b


def _ln_no_affine(self, x):
    # Mistake: normalises but forgets the learned scale and shift.
    centred = x - x.mean(-1, keepdim=True)
    return centred / (centred.pow(2).mean(-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt()


def test_layer_norm_rejects_unbiased_variance(gpt_mini):
    with pytest.raises(CheckFailed, match=r"unbiased"):
        bb.check_layer_norm(_subclass(bb_sol.LayerNorm, forward=_ln_unbiased), gpt_mini)


def test_layer_norm_rejects_missing_scale_and_shift(gpt_mini):
    with pytest.raises(CheckFailed, match=r"did you apply w and b"):
        bb.check_layer_norm(_subclass(bb_sol.LayerNorm, forward=_ln_no_affine), gpt_mini)


def test_embed_rejects_sqrt_d_model_scaling(gpt_mini):
    # Mistake: the original Transformer paper's embedding scaling, which GPT-2 does not use.
    def forward(self, tokens):
        return self.W_E[tokens] * math.sqrt(self.W_E.shape[1])
    with pytest.raises(CheckFailed, match=r"does not rescale"):
        bb.check_embed(_subclass(bb_sol.Embed, forward=forward), gpt_mini)


def test_pos_embed_rejects_missing_batch_axis(gpt_mini):
    # Mistake: returns [pos, d_model] and relies on broadcasting later.
    def forward(self, tokens):
        return self.W_pos[: tokens.shape[1]]
    with pytest.raises(CheckFailed, match=r"batch, pos, d_model"):
        bb.check_pos_embed(_subclass(bb_sol.PosEmbed, forward=forward), gpt_mini)


def test_pos_embed_rejects_indexing_by_token_id(gpt_mini):
    # Mistake: looks W_pos up by token id (fails as soon as an id exceeds n_ctx).
    def forward(self, tokens):
        return self.W_pos[tokens]
    with pytest.raises(CheckFailed, match=r"raised IndexError"):
        bb.check_pos_embed(_subclass(bb_sol.PosEmbed, forward=forward), gpt_mini)


def test_mask_scores_rejects_masking_the_diagonal():
    # Mistake: triu() without diagonal=1, so a token cannot attend to itself.
    def mask_scores(scores, ignore):
        n = scores.shape[-1]
        return scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(), ignore)
    with pytest.raises(CheckFailed, match=r"masked the diagonal"):
        bb.check_mask_scores(mask_scores)


def test_mask_scores_rejects_masking_the_past():
    # Mistake: tril instead of triu, so the past is hidden and the future visible.
    def mask_scores(scores, ignore):
        n = scores.shape[-1]
        return scores.masked_fill(torch.ones(n, n, dtype=torch.bool).tril(-1), ignore)
    with pytest.raises(CheckFailed, match=r"masked the past"):
        bb.check_mask_scores(mask_scores)


def test_mask_scores_rejects_in_place_edit():
    # Mistake: masked_fill_ edits the caller's scores.
    def mask_scores(scores, ignore):
        n = scores.shape[-1]
        return scores.masked_fill_(torch.ones(n, n, dtype=torch.bool).triu(1), ignore)
    with pytest.raises(CheckFailed, match=r"in place"):
        bb.check_mask_scores(mask_scores)


def test_mask_scores_rejects_hard_coded_minus_infinity():
    # Mistake: ignores the `ignore` argument.
    def mask_scores(scores, ignore):
        n = scores.shape[-1]
        return scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    with pytest.raises(CheckFailed, match=r"ignore. value you are given"):
        bb.check_mask_scores(mask_scores)


def _attention_forward(scale=True, mask=True, softmax_dim=-1):
    def forward(self, x):
        q = einops.einsum(x, self.W_Q, "b p d, h d e -> b p h e") + self.b_Q
        k = einops.einsum(x, self.W_K, "b p d, h d e -> b p h e") + self.b_K
        v = einops.einsum(x, self.W_V, "b p d, h d e -> b p h e") + self.b_V
        scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k")
        if scale:
            scores = scores / math.sqrt(self.cfg.d_head)
        if mask:
            scores = bb_sol.mask_scores(scores, self.IGNORE)
        pattern = scores.softmax(dim=softmax_dim)
        self.last_pattern = pattern
        z = einops.einsum(pattern, v, "b h q k, b k h e -> b q h e")
        return einops.einsum(z, self.W_O, "b q h e, h e d -> b q d") + self.b_O
    return forward


def test_attention_rejects_missing_scale(gpt_mini):
    # Mistake: forgets to divide the scores by sqrt(d_head).
    with pytest.raises(CheckFailed, match=r"sqrt\(d_head\)"):
        bb.check_attention(_subclass(bb_sol.Attention, forward=_attention_forward(scale=False)), gpt_mini)


def test_attention_rejects_missing_mask(gpt_mini):
    # Mistake: no causal mask.
    with pytest.raises(CheckFailed, match=r"reading keys that come after it"):
        bb.check_attention(_subclass(bb_sol.Attention, forward=_attention_forward(mask=False)), gpt_mini)


def test_attention_rejects_softmax_over_queries(gpt_mini):
    # Mistake: softmax over the query axis.
    with pytest.raises(CheckFailed, match=r"sum to 1 over the keys"):
        bb.check_attention(_subclass(bb_sol.Attention, forward=_attention_forward(softmax_dim=-2)), gpt_mini)


def test_mlp_rejects_relu(gpt_mini):
    # Mistake: ReLU instead of GPT-2's GELU.
    def forward(self, x):
        return torch.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out
    with pytest.raises(CheckFailed, match=r"tanh approximation"):
        bb.check_mlp(_subclass(bb_sol.MLP, forward=forward), gpt_mini)


def test_mlp_rejects_exact_gelu(gpt_mini):
    # Mistake: torch's default (erf) GELU, not the tanh approximation GPT-2 was trained with.
    def forward(self, x):
        return F.gelu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out
    with pytest.raises(CheckFailed, match=r"tanh approximation"):
        bb.check_mlp(_subclass(bb_sol.MLP, forward=forward), gpt_mini)


def test_transformer_block_rejects_parallel_branches(gpt_mini):
    # Mistake: the MLP reads the stream from before the attention output was added.
    def forward(self, resid):
        return resid + self.attn(self.ln1(resid)) + self.mlp(self.ln2(resid))
    with pytest.raises(CheckFailed, match=r"parallel branches"):
        bb.check_transformer_block(_subclass(bb_sol.TransformerBlock, forward=forward), gpt_mini)


def test_unembed_rejects_missing_bias(gpt_mini):
    # Mistake: forgets b_U.
    def forward(self, x):
        return x @ self.W_U
    with pytest.raises(CheckFailed, match=r"x @ W_U \+ b_U"):
        bb.check_unembed(_subclass(bb_sol.Unembed, forward=forward), gpt_mini)


def test_gpt_rejects_missing_final_layer_norm(gpt_mini):
    # Mistake: unembeds the last block's output directly.
    def forward(self, tokens):
        resid = self.embed(tokens) + self.pos_embed(tokens)
        for block in self.blocks:
            resid = block(resid)
        return self.unembed(resid)
    with pytest.raises(CheckFailed, match=r"left out the final LayerNorm"):
        bb.check_gpt(_subclass(bb_sol.GPT, forward=forward), gpt_mini)


def test_gpt_rejects_missing_position_embedding(gpt_mini):
    # Mistake: only the token embedding starts the residual stream.
    def forward(self, tokens):
        resid = self.embed(tokens)
        for block in self.blocks:
            resid = block(resid)
        return self.unembed(self.ln_final(resid))
    with pytest.raises(CheckFailed, match=r"embed \+ pos_embed"):
        bb.check_gpt(_subclass(bb_sol.GPT, forward=forward), gpt_mini)


# ============================================================================================
# Section 3: Training


def test_training_solutions_pass():
    training_checks.check_make_windows(training_sol.make_windows)
    training_checks.check_lm_loss(training_sol.lm_loss)
    training_checks.check_train_step(training_sol.train_step)
    training_checks.check_evaluate(training_sol.evaluate)
    training_checks.check_lr_at(training_sol.lr_at)


def _bos_column(n, bos, like):
    return torch.full((n, 1), bos, dtype=like.dtype, device=like.device)


def test_make_windows_rejects_overlapping_windows():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: a sliding window with stride 1, so consecutive windows share n_ctx - 2 tokens.
        body = stream.unfold(0, n_ctx - 1, 1)
        return torch.cat([_bos_column(len(body), bos, stream), body], dim=1)

    with pytest.raises(CheckFailed, match=r"the windows overlap"):
        training_checks.check_make_windows(make_windows)


def test_make_windows_rejects_padded_tail():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: rounds the number of windows up and pads the last one instead of dropping it.
        per = n_ctx - 1
        n_windows = math.ceil(len(stream) / per)
        padded = torch.cat([stream, stream.new_zeros(n_windows * per - len(stream))])
        return torch.cat([_bos_column(n_windows, bos, stream), padded.view(n_windows, per)], dim=1)

    with pytest.raises(CheckFailed, match=r"Drop the incomplete tail"):
        training_checks.check_make_windows(make_windows)


def test_make_windows_rejects_bos_on_top_of_n_ctx_tokens():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: n_ctx stream tokens per window and then BOS in front, n_ctx + 1 in all.
        n_windows = len(stream) // n_ctx
        body = stream[: n_windows * n_ctx].view(n_windows, n_ctx)
        return torch.cat([_bos_column(n_windows, bos, stream), body], dim=1)

    with pytest.raises(CheckFailed, match=r"n_ctx = 6 tokens in all, BOS included"):
        training_checks.check_make_windows(make_windows)


def test_make_windows_rejects_missing_bos():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: forgets the BOS token and fills the whole window with stream tokens.
        n_windows = len(stream) // n_ctx
        return stream[: n_windows * n_ctx].view(n_windows, n_ctx)

    with pytest.raises(CheckFailed, match=r"should start with the BOS token 0"):
        training_checks.check_make_windows(make_windows)


def test_make_windows_rejects_hard_coded_bos():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: always writes token 0, ignoring the bos argument.
        return training_sol.make_windows(stream, n_ctx, 0)

    with pytest.raises(CheckFailed, match=r"Use the bos argument"):
        training_checks.check_make_windows(make_windows)


def test_lm_loss_rejects_unshifted_loss():
    def lm_loss(model, tokens):
        # Mistake: scores the logits at position i against token i itself (no shift).
        logits = model(tokens)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))

    with pytest.raises(CheckFailed, match=r"the logits at position i predict token i \+ 1"):
        training_checks.check_lm_loss(lm_loss)


def test_lm_loss_rejects_shift_the_wrong_way():
    def lm_loss(model, tokens):
        # Mistake: pairs each position's logits with the previous token.
        logits = model(tokens)
        return F.cross_entropy(logits[:, 1:].reshape(-1, logits.shape[-1]), tokens[:, :-1].reshape(-1))

    with pytest.raises(CheckFailed, match=r"You shifted the wrong way"):
        training_checks.check_lm_loss(lm_loss)


def test_lm_loss_rejects_logits_as_log_probs():
    def lm_loss(model, tokens):
        # Mistake: reads the logits as log-probabilities (no log_softmax) and picks the target's.
        logits = model(tokens)
        return -logits[:, :-1].gather(-1, tokens[:, 1:, None]).mean()

    with pytest.raises(CheckFailed, match=r"apply log_softmax first"):
        training_checks.check_lm_loss(lm_loss)


def test_lm_loss_rejects_summed_loss():
    def lm_loss(model, tokens):
        # Mistake: sums the per-token losses instead of averaging them.
        logits = model(tokens)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                               reduction="sum")

    with pytest.raises(CheckFailed, match=r"You summed the per-token losses"):
        training_checks.check_lm_loss(lm_loss)


def test_lm_loss_rejects_detached_loss():
    def lm_loss(model, tokens):
        # Mistake: detaches the loss (e.g. to print it), so backward() has nothing to follow.
        return training_sol.lm_loss(model, tokens).detach()

    with pytest.raises(CheckFailed, match=r"keep the loss in the graph"):
        training_checks.check_lm_loss(lm_loss)


def test_train_step_rejects_missing_zero_grad():
    def train_step(model, optimizer, tokens):
        # Mistake: never clears the gradients, so every backward() adds to the previous ones.
        loss = training_sol.lm_loss(model, tokens)
        loss.backward()
        optimizer.step()
        return loss.item()

    with pytest.raises(CheckFailed, match=r"The gradients were not cleared"):
        training_checks.check_train_step(train_step)


def test_train_step_rejects_zero_grad_after_step():
    def train_step(model, optimizer, tokens):
        # Mistake: clears the gradients after the step, so the first step uses a stale gradient.
        loss = training_sol.lm_loss(model, tokens)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    with pytest.raises(CheckFailed, match=r"cleared them after the step"):
        training_checks.check_train_step(train_step)


def test_train_step_rejects_loss_after_the_step():
    def train_step(model, optimizer, tokens):
        # Mistake: reports the loss recomputed after the update.
        optimizer.zero_grad()
        training_sol.lm_loss(model, tokens).backward()
        optimizer.step()
        with torch.no_grad():
            return training_sol.lm_loss(model, tokens).item()

    with pytest.raises(CheckFailed, match=r"the loss \*after\* the update"):
        training_checks.check_train_step(train_step)


def test_train_step_rejects_tensor_loss():
    def train_step(model, optimizer, tokens):
        # Mistake: returns the loss tensor instead of loss.item().
        optimizer.zero_grad()
        loss = training_sol.lm_loss(model, tokens)
        loss.backward()
        optimizer.step()
        return loss

    with pytest.raises(CheckFailed, match=r"as a Python float \(loss.item\(\)\)"):
        training_checks.check_train_step(train_step)


def test_train_step_rejects_missing_optimizer_step():
    def train_step(model, optimizer, tokens):
        # Mistake: computes the gradients but never steps the optimiser.
        optimizer.zero_grad()
        loss = training_sol.lm_loss(model, tokens)
        loss.backward()
        return loss.item()

    with pytest.raises(CheckFailed, match=r"call optimizer.step\(\)"):
        training_checks.check_train_step(train_step)


def _evaluate(model, windows, batch_size, *, weighted=True, no_grad=True, eval_mode=True, restore=True):
    was_training = model.training
    if eval_mode:
        model.eval()
    means, sizes = [], []
    with torch.set_grad_enabled(not no_grad):
        for start in range(0, len(windows), batch_size):
            batch = windows[start : start + batch_size]
            means.append(training_sol.lm_loss(model, batch).item())
            sizes.append(batch[:, 1:].numel())
    if restore:
        model.train(was_training)
    if weighted:
        return sum(m * s for m, s in zip(means, sizes, strict=True)) / sum(sizes)
    return sum(means) / len(means)


def test_evaluate_rejects_mean_of_batch_means():
    def evaluate(model, windows, batch_size):
        # Mistake: averages the per-batch means, over-weighting the short last batch.
        return _evaluate(model, windows, batch_size, weighted=False)

    with pytest.raises(CheckFailed, match=r"the mean of the per-batch means"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_gradients_enabled():
    def evaluate(model, windows, batch_size):
        # Mistake: forgets torch.no_grad(), building a graph nobody back-propagates.
        return _evaluate(model, windows, batch_size, no_grad=False)

    with pytest.raises(CheckFailed, match=r"wrap the loop in torch.no_grad\(\)"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_training_mode():
    def evaluate(model, windows, batch_size):
        # Mistake: forgets model.eval().
        return _evaluate(model, windows, batch_size, eval_mode=False)

    with pytest.raises(CheckFailed, match=r"call model.eval\(\) first"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_mode_not_restored():
    def evaluate(model, windows, batch_size):
        # Mistake: leaves the model in eval mode afterwards.
        return _evaluate(model, windows, batch_size, restore=False)

    with pytest.raises(CheckFailed, match=r"Restore the mode it was in"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_always_back_to_training():
    def evaluate(model, windows, batch_size):
        # Mistake: always calls model.train() at the end, even for a model that was in eval mode.
        out = _evaluate(model, windows, batch_size, restore=False)
        model.train()
        return out

    with pytest.raises(CheckFailed, match=r"in eval mode before evaluate and in training mode after"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_one_big_batch():
    def evaluate(model, windows, batch_size):
        # Mistake: ignores batch_size and runs every window at once.
        return _evaluate(model, windows, len(windows))

    with pytest.raises(CheckFailed, match=r"go through the windows batch_size at a time"):
        training_checks.check_evaluate(evaluate)


def test_lr_at_rejects_warmup_from_zero():
    def lr_at(step, max_lr, warmup, total, min_lr_frac=0.1):
        # Mistake: warms up with step / warmup, so step 0 has learning rate 0.
        if step < warmup:
            return max_lr * step / warmup
        return training_sol.lr_at(step, max_lr, warmup, total, min_lr_frac)

    with pytest.raises(CheckFailed, match=r"At step 0 your learning rate is 0"):
        training_checks.check_lr_at(lr_at)


def test_lr_at_rejects_warmup_over_warmup_plus_one():
    def lr_at(step, max_lr, warmup, total, min_lr_frac=0.1):
        # Mistake: divides by warmup + 1, so the warm-up never quite reaches max_lr.
        if step < warmup:
            return max_lr * (step + 1) / (warmup + 1)
        return training_sol.lr_at(step, max_lr, warmup, total, min_lr_frac)

    with pytest.raises(CheckFailed, match=r"reach max_lr at step warmup - 1"):
        training_checks.check_lr_at(lr_at)


def test_lr_at_rejects_decay_to_zero():
    def lr_at(step, max_lr, warmup, total, min_lr_frac=0.1):
        # Mistake: the cosine decays to 0 instead of to the floor min_lr_frac * max_lr.
        if step < warmup:
            return max_lr * (step + 1) / warmup
        return max_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    with pytest.raises(CheckFailed, match=r"end at min_lr = min_lr_frac \* max_lr"):
        training_checks.check_lr_at(lr_at)


def test_lr_at_rejects_cosine_from_step_zero():
    def lr_at(step, max_lr, warmup, total, min_lr_frac=0.1):
        # Mistake: measures the cosine's progress from step 0 instead of from the end of warm-up.
        if step < warmup:
            return max_lr * (step + 1) / warmup
        min_lr = min_lr_frac * max_lr
        return min_lr + (max_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * step / total))

    with pytest.raises(CheckFailed, match=r"measure its progress from the end of the warm-up"):
        training_checks.check_lr_at(lr_at)


# ============================================================================================
# Section 4: Sampling

NEG_INF = float("-inf")


def test_sampling_solutions_pass(gpt_mini):
    sp.check_sample_next_token(sp_sol.sample_next_token)
    sp.check_top_k_logits(sp_sol.top_k_logits)
    sp.check_top_p_logits(sp_sol.top_p_logits)
    sp.check_frequency_penalty(sp_sol.frequency_penalty)
    sp.check_beam_search(sp_sol.beam_search)
    sp.check_attention_with_cache(sp_sol.attention_with_cache, bb_sol.Attention, gpt_mini)
    sp.check_forward_with_cache(sp_sol.forward_with_cache, bb_sol.GPT, gpt_mini)
    sp.check_generate_with_cache(sp_sol.generate_with_cache, bb_sol.GPT, gpt_mini)


# --- sample_next_token ------------------------------------------------------------------------


def test_sample_next_token_rejects_multiplying_by_temperature():
    def sample_next_token(logits, temperature, generator=None):
        if temperature == 0:
            return logits.argmax(-1)
        # Mistake: multiplies by the temperature, so a high temperature sharpens the distribution.
        return torch.multinomial((logits * temperature).softmax(-1), 1, generator=generator)[:, 0]

    with pytest.raises(CheckFailed, match=r"softmax\(logits \* temperature\)"):
        sp.check_sample_next_token(sample_next_token)


def test_sample_next_token_rejects_dividing_by_zero_temperature():
    def sample_next_token(logits, temperature, generator=None):
        # Mistake: no special case for temperature 0, so the logits are divided by zero.
        return torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)[:, 0]

    with pytest.raises(CheckFailed, match=r"temperature=0 means greedy"):
        sp.check_sample_next_token(sample_next_token)


def test_sample_next_token_rejects_ignoring_the_generator():
    def sample_next_token(logits, temperature, generator=None):
        if temperature == 0:
            return logits.argmax(-1)
        # Mistake: draws from the global random-number generator, so seeding the given one does nothing.
        return torch.multinomial((logits / temperature).softmax(-1), 1)[:, 0]

    with pytest.raises(CheckFailed, match=r"generators seeded alike"):
        sp.check_sample_next_token(sample_next_token)


# --- top_k_logits -----------------------------------------------------------------------------


def test_top_k_logits_rejects_keeping_k_plus_one():
    def top_k_logits(logits, k):
        # Mistake: takes the (k+1)-th largest logit as the threshold and keeps everything >= it.
        kth = logits.sort(-1, descending=True).values[:, k:k + 1]
        return logits.masked_fill(logits < kth, NEG_INF)

    with pytest.raises(CheckFailed, match=r"You kept k \+ 1"):
        sp.check_top_k_logits(top_k_logits)


def test_top_k_logits_rejects_editing_in_place():
    def top_k_logits(logits, k):
        # Mistake: assigns -inf into the caller's tensor and returns it.
        kth = logits.topk(k, dim=-1).values[:, -1:]
        logits[logits < kth] = NEG_INF
        return logits

    with pytest.raises(CheckFailed, match=r"changed the logits it was given"):
        sp.check_top_k_logits(top_k_logits)


# --- top_p_logits -----------------------------------------------------------------------------


def test_top_p_logits_rejects_dropping_the_token_that_crosses_p():
    def top_p_logits(logits, p):
        probs, order = logits.softmax(-1).sort(-1, descending=True)
        # Mistake: keeps tokens while the cumulative sum *including* themselves is below p.
        drop = probs.cumsum(-1) >= p
        return logits.masked_fill(drop.scatter(-1, order, drop), NEG_INF)

    with pytest.raises(CheckFailed, match=r"dropped the token whose probability carries"):
        sp.check_top_p_logits(top_p_logits)


def test_top_p_logits_rejects_a_mask_left_in_sorted_order():
    def top_p_logits(logits, p):
        probs = logits.softmax(-1).sort(-1, descending=True).values
        # Mistake: the mask is computed in sorted order and applied to the unsorted logits.
        drop = probs.cumsum(-1) - probs >= p
        return logits.masked_fill(drop, NEG_INF)

    with pytest.raises(CheckFailed, match=r"top_p_logits\(logits, p=0.7\) kept the tokens"):
        sp.check_top_p_logits(top_p_logits)


# --- frequency_penalty ------------------------------------------------------------------------


def test_frequency_penalty_rejects_a_presence_penalty():
    def frequency_penalty(logits, tokens_so_far, penalty):
        # Mistake: subtracts the penalty once for any token that appeared, whatever its count.
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, tokens_so_far, True)
        return logits - penalty * seen.float()

    with pytest.raises(CheckFailed, match=r"presence"):
        sp.check_frequency_penalty(frequency_penalty)


def test_frequency_penalty_rejects_counting_over_the_batch():
    def frequency_penalty(logits, tokens_so_far, penalty):
        # Mistake: one histogram of the whole batch, subtracted from every row.
        counts = torch.bincount(tokens_so_far.flatten(), minlength=logits.shape[-1]).to(logits.dtype)
        return logits - penalty * counts

    with pytest.raises(CheckFailed, match=r"whole batch"):
        sp.check_frequency_penalty(frequency_penalty)


# --- beam_search ------------------------------------------------------------------------------


def test_beam_search_rejects_extending_each_beam_by_its_best_token_only():
    def beam_search(log_prob_fn, prompt, n_beams, n_steps):
        beams, scores = prompt[None], torch.zeros(1)
        for _ in range(n_steps):
            # Mistake: each beam keeps only its own best extension, so one beam stays one beam: greedy.
            best = log_prob_fn(beams).max(-1)
            beams = torch.cat([beams, best.indices[:, None]], dim=1)
            scores = scores + best.values
        return beams[scores.argmax()], float(scores.max())

    with pytest.raises(CheckFailed, match=r"That is the greedy sequence"):
        sp.check_beam_search(beam_search)


def test_beam_search_rejects_ranking_by_the_last_step_only():
    def beam_search(log_prob_fn, prompt, n_beams, n_steps):
        beams, scores = prompt[None], torch.zeros(1)
        for _ in range(n_steps):
            log_probs = log_prob_fn(beams)
            d_vocab = log_probs.shape[-1]
            # Mistake: ranks candidates by the new token's log-prob, forgetting each beam's score so far.
            best = log_probs.flatten().topk(min(n_beams, log_probs.numel()))
            beams = torch.cat([beams[best.indices // d_vocab], (best.indices % d_vocab)[:, None]], dim=1)
            scores = best.values
        return beams[0], float(scores[0])

    with pytest.raises(CheckFailed, match=r"rank candidates by the sum"):
        sp.check_beam_search(beam_search)


# --- attention_with_cache ---------------------------------------------------------------------


def _attention_with_cache(offset: bool):
    def attention_with_cache(attn, x_new, past_k, past_v):
        q = einops.einsum(x_new, attn.W_Q, "b p d, h d e -> b p h e") + attn.b_Q
        k = einops.einsum(x_new, attn.W_K, "b p d, h d e -> b p h e") + attn.b_K
        v = einops.einsum(x_new, attn.W_V, "b p d, h d e -> b p h e") + attn.b_V
        if past_k is not None:
            k, v = torch.cat([past_k, k], dim=1), torch.cat([past_v, v], dim=1)
        n_new, n_all = q.shape[1], k.shape[1]
        scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k") / math.sqrt(q.shape[-1])
        diagonal = n_all - n_new + 1 if offset else 1
        mask = torch.ones(n_new, n_all, dtype=torch.bool).triu(diagonal=diagonal)
        z = einops.einsum(scores.masked_fill(mask, attn.IGNORE).softmax(-1), v, "b h q k, b k h e -> b q h e")
        return einops.einsum(z, attn.W_O, "b q h e, h e d -> b q d") + attn.b_O, k, v
    return attention_with_cache


def test_attention_with_cache_rejects_a_mask_without_the_past_offset(gpt_mini):
    # Mistake: triu(diagonal=1) on the [new, past + new] scores, as if the new block started at 0.
    with pytest.raises(CheckFailed, match=r"offset by the past length"):
        sp.check_attention_with_cache(_attention_with_cache(offset=False), bb_sol.Attention, gpt_mini)


def test_attention_with_cache_rejects_returning_only_the_new_keys(gpt_mini):
    def attention_with_cache(attn, x_new, past_k, past_v):
        out, k_all, v_all = _attention_with_cache(offset=True)(attn, x_new, past_k, past_v)
        # Mistake: returns the new positions' keys and values, so the cache never grows.
        n_new = x_new.shape[1]
        return out, k_all[:, -n_new:], v_all[:, -n_new:]

    with pytest.raises(CheckFailed, match=r"past \+ new, n_heads, d_head"):
        sp.check_attention_with_cache(attention_with_cache, bb_sol.Attention, gpt_mini)


# --- forward_with_cache -----------------------------------------------------------------------


def test_forward_with_cache_rejects_positions_restarting_at_zero(gpt_mini):
    def forward_with_cache(gpt, tokens_new, cache):
        # Mistake: pos_embed gives positions 0.., whatever is already cached.
        resid = gpt.embed(tokens_new) + gpt.pos_embed(tokens_new)
        new_cache = []
        for layer, block in enumerate(gpt.blocks):
            past_k, past_v = (None, None) if cache is None else cache[layer]
            attn_out, k, v = sp_sol.attention_with_cache(block.attn, block.ln1(resid), past_k, past_v)
            resid = resid + attn_out
            resid = resid + block.mlp(block.ln2(resid))
            new_cache.append((k, v))
        return gpt.unembed(gpt.ln_final(resid)), new_cache

    with pytest.raises(CheckFailed, match=r"add W_pos\[6:10\]"):
        sp.check_forward_with_cache(forward_with_cache, bb_sol.GPT, gpt_mini)


def test_forward_with_cache_rejects_one_cache_for_every_layer(gpt_mini):
    def forward_with_cache(gpt, tokens_new, cache):
        past = 0 if cache is None else cache[0][0].shape[1]
        resid = gpt.embed(tokens_new) + gpt.pos_embed.W_pos[past:past + tokens_new.shape[1]]
        new_cache = []
        for block in gpt.blocks:
            # Mistake: every block reads layer 0's keys and values.
            past_k, past_v = (None, None) if cache is None else cache[0]
            attn_out, k, v = sp_sol.attention_with_cache(block.attn, block.ln1(resid), past_k, past_v)
            resid = resid + attn_out
            resid = resid + block.mlp(block.ln2(resid))
            new_cache.append((k, v))
        return gpt.unembed(gpt.ln_final(resid)), new_cache

    with pytest.raises(CheckFailed, match=r"its own layer's \(k, v\)"):
        sp.check_forward_with_cache(forward_with_cache, bb_sol.GPT, gpt_mini)


# --- generate_with_cache ----------------------------------------------------------------------


def test_generate_with_cache_rejects_refeeding_the_whole_sequence(gpt_mini):
    def generate_with_cache(gpt, prompt, n_new):
        tokens = prompt
        for _ in range(n_new):
            # Mistake: runs the whole sequence again every step, with an empty cache.
            logits, _ = sp_sol.forward_with_cache(gpt, tokens, None)
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        return tokens

    with pytest.raises(CheckFailed, match=r"positions through the model"):
        sp.check_generate_with_cache(generate_with_cache, bb_sol.GPT, gpt_mini)


def test_generate_with_cache_rejects_a_cache_that_is_never_updated(gpt_mini):
    def generate_with_cache(gpt, prompt, n_new):
        logits, cache = sp_sol.forward_with_cache(gpt, prompt, None)
        tokens = prompt
        for _ in range(n_new):
            next_token = logits[:, -1].argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, next_token], dim=1)
            # Mistake: throws the updated cache away, so every new token sits right after the prompt.
            logits, _ = sp_sol.forward_with_cache(gpt, next_token, cache)
        return tokens

    with pytest.raises(CheckFailed, match=r"differ from uncached greedy decoding"):
        sp.check_generate_with_cache(generate_with_cache, bb_sol.GPT, gpt_mini)
