"""Checks for section 2, "Building blocks" (book/chapters/transformer/02-building-blocks.md).

Each check builds the learner's module with the reference model's sizes, copies the reference
model's weights into it (``interpbook.zoo.scratch.load_weights``), feeds it the activation that
enters that component in a real forward pass and compares its output with the activation
TransformerLens recorded after the component. The mask check uses hand-made scores, and the
attention check also proves causality by construction (changing a later position must not
change an earlier output).
"""

from __future__ import annotations

from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed
from interpbook.zoo.scratch import GPTConfig, load_weights

__all__ = [
    "check_attention",
    "check_embed",
    "check_gpt",
    "check_layer_norm",
    "check_mask_scores",
    "check_mlp",
    "check_pos_embed",
    "check_transformer_block",
    "check_unembed",
]

TEXT = "King.\nWhat say you, my lord? Speak, and tell me true: is it the king that comes?"
ATOL = 2e-5  # one component in float32; the whole model is compared at 1e-4


def _run(model: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Two sequences (the text, and its tokens reversed after BOS) and every activation."""
    tokens = model.to_tokens(TEXT)[0]
    tokens = torch.stack([tokens, torch.cat([tokens[:1], tokens[1:].flip(0)])])
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return tokens, {k: v for k, v in cache.items()}


def _build(cls: type, model: Any, component: str) -> torch.nn.Module:
    cfg = GPTConfig.from_model(model)
    module = call(cls, cfg, what="(the GPTConfig of the reference model)")
    if not isinstance(module, torch.nn.Module):
        raise CheckFailed(f"{cls.__name__}(cfg) should be an nn.Module; got {type(module).__name__}.")
    try:
        load_weights(module, model, component)
    except ValueError as e:
        raise CheckFailed(f"Could not copy the model's {component} weights into your {cls.__name__}: {e}") from None
    return module.to(model.cfg.device).eval()


def _forward(module: torch.nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    with torch.no_grad():
        return call(module, x, what=what)


def check_layer_norm(LayerNorm: type, model: Any) -> None:
    ln = _build(LayerNorm, model, "blocks.1.ln1")
    _, cache = _run(model)
    x = cache["blocks.1.hook_resid_pre"]
    out = _forward(ln, x, "(the residual stream before block 1)")
    expect_tensor(out, "LayerNorm(x)", tuple(x.shape), "batch, pos, d_model", floating=True)
    centred = x - x.mean(-1, keepdim=True)
    if torch.allclose(out.mean(-1), torch.zeros_like(out.mean(-1)), atol=1e-4) and not torch.allclose(
            out, cache["blocks.1.ln1.hook_out"], atol=1e-3):
        hint = "Your output has mean 0 per position but is not the reference: did you apply w and b?"
    else:
        hint = ""
    if torch.allclose(out, centred / centred.std(-1, keepdim=True) * ln.w + ln.b, atol=ATOL):
        hint = ("That is the *unbiased* variance (dividing by d_model - 1): LayerNorm divides by "
                "d_model, and adds eps inside the square root.")
    expect_close(out, cache["blocks.1.ln1.hook_out"], "LayerNorm(x) against blocks.1.ln1.hook_out", atol=ATOL,
                 hint=hint or "Normalise over the last axis: subtract the mean, divide by sqrt(variance + eps), "
                 "then scale by w and shift by b.")
    passed("LayerNorm matches blocks.1.ln1 of the reference model")


def check_embed(Embed: type, model: Any) -> None:
    embed = _build(Embed, model, "embed")
    tokens, cache = _run(model)
    out = _forward(embed, tokens, "(token ids)")
    expect_tensor(out, "Embed(tokens)", tuple(cache["hook_embed"].shape), "batch, pos, d_model", floating=True)
    expect_close(out, cache["hook_embed"], "Embed(tokens) against hook_embed", atol=ATOL,
                 hint="Row t of W_E is the vector of token t, used as it is (GPT-2 does not rescale "
                 "its embeddings by sqrt(d_model)).")
    passed("Embed matches hook_embed")


def check_pos_embed(PosEmbed: type, model: Any) -> None:
    pos_embed = _build(PosEmbed, model, "pos_embed")
    tokens, cache = _run(model)
    out = _forward(pos_embed, tokens, "(token ids)")
    expect_tensor(out, "PosEmbed(tokens)", tuple(cache["hook_pos_embed"].shape), "batch, pos, d_model",
                  floating=True)
    expect_close(out, cache["hook_pos_embed"], "PosEmbed(tokens) against hook_pos_embed", atol=ATOL,
                 hint="Position p gets row p of W_pos, whatever token sits there; both rows of the batch "
                 "get the same vectors.")
    short = tokens[:, :5]
    out5 = _forward(pos_embed, short, "(the first 5 token ids)")
    expect_tensor(out5, "PosEmbed(tokens[:, :5])", (2, 5, cache["hook_pos_embed"].shape[-1]), "batch, pos, d_model")
    passed("PosEmbed matches hook_pos_embed")


def check_mask_scores(mask_scores: Any) -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 3, 5, 5, generator=g)
    before = scores.clone()
    ignore = torch.tensor(-1234.0)
    out = call(mask_scores, scores, ignore, what="(random scores [2, 3, 5, 5], ignore = -1234)")
    expect_tensor(out, "mask_scores(scores, ignore)", (2, 3, 5, 5), "batch, head, q_pos, k_pos", floating=True)
    if not torch.equal(scores, before):
        raise CheckFailed("mask_scores changed its input in place (masked_fill_ with an underscore?); return a "
                          "masked copy: the caller may still need the raw scores.")
    want = before.clone()
    for q in range(5):
        for k in range(q + 1, 5):
            want[..., q, k] = -1234.0
    if torch.equal(out, torch.where(torch.ones(5, 5, dtype=torch.bool).triu(), torch.tensor(-1234.0), before)):
        raise CheckFailed("You masked the diagonal too: a query may attend to its own position (k == q); only "
                          "keys *after* the query (k > q) are masked. Use triu(diagonal=1).")
    if torch.equal(out, torch.where(torch.ones(5, 5, dtype=torch.bool).tril(-1), torch.tensor(-1234.0), before)):
        raise CheckFailed("You masked the past instead of the future: entry [q, k] must be masked when the key "
                          "comes after the query, k > q (above the diagonal).")
    masked_elsewhere = (out != want) & (want == -1234.0)
    if masked_elsewhere.any() and torch.isinf(out[masked_elsewhere]).all():
        raise CheckFailed("Masked entries should hold the `ignore` value you are given (here -1234), not a "
                          "value you chose: the model passes its own IGNORE.")
    expect_close(out, want, "mask_scores(scores, ignore)", atol=0, rtol=0,
                 hint="Entries with k > q become `ignore`; every other entry stays as it was.")
    passed("mask_scores masks exactly the future keys")


def check_attention(Attention: type, model: Any) -> None:
    attn = _build(Attention, model, "blocks.2.attn")
    _, cache = _run(model)
    x = cache["blocks.2.ln1.hook_out"]
    out = _forward(attn, x, "(the normalised residual stream entering block 2's attention)")
    expect_tensor(out, "Attention(x)", tuple(x.shape), "batch, pos, d_model", floating=True)
    pattern = getattr(attn, "last_pattern", None)
    ref_pattern = cache["blocks.2.attn.hook_pattern"]
    if not isinstance(pattern, torch.Tensor):
        raise CheckFailed("Keep the attention pattern in self.last_pattern ([batch, head, q_pos, k_pos]).")
    expect_tensor(pattern, "self.last_pattern", tuple(ref_pattern.shape), "batch, head, q_pos, k_pos", floating=True)
    sums = pattern.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise CheckFailed("Each query's pattern should sum to 1 over the keys; take the softmax over the last "
                          "axis (k_pos), after masking.")
    x2 = x.clone()
    x2[:, -1] += 5.0  # change the last position only
    out2 = _forward(attn, x2, "(the same input with its last position changed)")
    if not torch.allclose(out[:, :-1], out2[:, :-1], atol=1e-5):
        raise CheckFailed("Changing the input at the *last* position changed the outputs at earlier positions: "
                          "a query is reading keys that come after it. Apply mask_scores before the softmax.")
    if torch.allclose(pattern, ref_pattern, atol=1e-4):
        hint = "The pattern is right, so look at the values, W_O and the biases b_V and b_O."
    else:
        hint = "Your pattern differs from hook_pattern: queries and keys need their biases, and the scores " \
               "are divided by sqrt(d_head) before the mask and softmax."
    expect_close(pattern, ref_pattern, "self.last_pattern against blocks.2.attn.hook_pattern", atol=1e-5,
                 hint=hint)
    expect_close(out, cache["blocks.2.hook_attn_out"], "Attention(x) against blocks.2.hook_attn_out", atol=ATOL,
                 hint=hint)
    passed("Attention matches blocks.2.attn: pattern, output, and causality")


def check_mlp(MLP: type, model: Any) -> None:
    mlp = _build(MLP, model, "blocks.1.mlp")
    _, cache = _run(model)
    x = cache["blocks.1.ln2.hook_out"]
    out = _forward(mlp, x, "(the normalised residual stream entering block 1's MLP)")
    expect_tensor(out, "MLP(x)", tuple(x.shape), "batch, pos, d_model", floating=True)
    expect_close(out, cache["blocks.1.hook_mlp_out"], "MLP(x) against blocks.1.hook_mlp_out", atol=ATOL,
                 hint="GPT-2's non-linearity is GELU with the tanh approximation "
                 "(F.gelu(x, approximate='tanh')), applied between W_in + b_in and W_out + b_out.")
    passed("MLP matches blocks.1.mlp")


def check_transformer_block(TransformerBlock: type, model: Any) -> None:
    block = _build(TransformerBlock, model, "blocks.1")
    _, cache = _run(model)
    x = cache["blocks.1.hook_resid_pre"]
    out = _forward(block, x, "(the residual stream entering block 1)")
    expect_tensor(out, "TransformerBlock(resid)", tuple(x.shape), "batch, pos, d_model", floating=True)
    with torch.no_grad():
        parallel = x + block.attn(block.ln1(x)) + block.mlp(block.ln2(x))
    hint = "resid + attn(ln1(resid)) first, then + mlp(ln2(...)) of the updated stream."
    if torch.allclose(out, parallel, atol=ATOL):
        hint = ("Your MLP read the stream from before the attention branch (parallel branches). In GPT-2 the "
                "MLP reads the stream *after* the attention output was added.")
    expect_close(out, cache["blocks.1.hook_resid_post"], "TransformerBlock(resid) against blocks.1.hook_resid_post",
                 atol=1e-4, hint=hint)
    passed("TransformerBlock matches blocks.1 (hook_resid_pre -> hook_resid_post)")


def check_unembed(Unembed: type, model: Any) -> None:
    unembed = _build(Unembed, model, "unembed")
    tokens, cache = _run(model)
    x = cache["ln_final.hook_out"]
    out = _forward(unembed, x, "(the final normalised residual stream)")
    with torch.no_grad():
        logits = model(tokens)
    expect_tensor(out, "Unembed(x)", tuple(logits.shape), "batch, pos, d_vocab", floating=True)
    expect_close(out, logits, "Unembed(x) against the model's logits", atol=1e-4,
                 hint="logits = x @ W_U + b_U.")
    with torch.no_grad():  # by construction: W_U = 0 leaves exactly the bias
        unembed.W_U.zero_()
        unembed.b_U.copy_(torch.arange(unembed.b_U.shape[0], dtype=unembed.b_U.dtype))
        out = _forward(unembed, x, "(W_U set to 0 and b_U to 0, 1, 2, ...)")
    expect_close(out, unembed.b_U.detach().expand_as(out), "Unembed(x) with W_U = 0 and b_U = 0, 1, 2, ...",
                 atol=1e-6, hint="logits = x @ W_U + b_U: with W_U = 0 every position's logits are b_U.")
    passed("Unembed matches the model's logits")


def check_gpt(GPT: type, model: Any) -> None:
    gpt = _build(GPT, model, "")
    tokens, cache = _run(model)
    out = _forward(gpt, tokens, "(token ids)")
    with torch.no_grad():
        logits = model(tokens)
    expect_tensor(out, "GPT(tokens)", tuple(logits.shape), "batch, pos, d_vocab", floating=True)
    with torch.no_grad():
        no_final_ln = gpt.unembed(cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"])
    hint = "embed + pos_embed, every block in order, ln_final, unembed."
    if torch.allclose(out, no_final_ln, atol=1e-3):
        hint = "You left out the final LayerNorm (ln_final) between the last block and the unembedding."
    expect_close(out, logits, "GPT(tokens) against the model's logits", atol=1e-4, hint=hint)
    passed("GPT reproduces the reference model's logits to 1e-4")
