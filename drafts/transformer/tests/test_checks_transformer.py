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
from interpbook.solutions.transformer import building_blocks as bb_sol
from interpbook.zoo import load_model


@pytest.fixture(scope="module")
def gpt_mini():
    return load_model("gpt-mini", device="cpu", shipped=True)


def _subclass(base, **methods):
    return type(base.__name__, (base,), methods)


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
