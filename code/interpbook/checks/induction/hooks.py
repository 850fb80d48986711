"""Checks for section 3, "Hooks" (book/chapters/induction/03-hooks.md).

The hook checks hand the learner's hook function made-up activations and a stand-in for the
``HookPoint`` (something with ``.name`` and ``.layer()``), built so the right answer is known by
construction. The ablation check compares with an ablation done a different way (subtracting
the head's output from the attention layer's output instead of zeroing its ``z``), and the
logit-attribution checks use tiny vectors whose answer can be worked out on paper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from interpbook.checks import (
    CheckFailed,
    FakeHook,
    call,
    expect_close,
    expect_no_leftover_hooks,
    expect_tensor,
    passed,
)

__all__ = [
    "check_induction_score_hook",
    "check_ablate_head_hook",
    "check_loss_per_head_ablation",
    "check_head_outputs",
    "check_logit_attribution",
]


# --- induction_score_hook ---------------------------------------------------------------------

def _fake_pattern(seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [batch=2, head=4, q, k] pattern on a 1 + 2*seq_len sequence and its induction scores.

    Head 0 attends exactly to the induction key q - seq_len + 1 from every query of the second
    copy; head 1 is a previous-token head (score 0); head 2 is an induction head in sequence 0
    and a BOS head in sequence 1 (score 0.5); head 3 splits 1/4 to the induction key and 3/4
    to BOS (score 0.25). In the first copy every head but head 1 attends to the token itself."""
    n = 1 + 2 * seq_len
    pat = torch.zeros(2, 4, n, n)
    for q in range(n):
        second = q >= seq_len + 1
        ind = q - seq_len + 1
        for b in range(2):
            pat[b, 1, q, max(q - 1, 0)] = 1.0
            if not second:
                for h in (0, 2, 3):
                    pat[b, h, q, q] = 1.0
                continue
            pat[b, 0, q, ind] = 1.0
            pat[b, 2, q, ind if b == 0 else 0] = 1.0
            pat[b, 3, q, ind] += 0.25
            pat[b, 3, q, 0] += 0.75
    return pat, torch.tensor([1.0, 0.0, 0.5, 0.25])


def check_induction_score_hook(fn: Callable) -> None:
    """``fn(pattern, hook, scores, seq_len)`` writes layer ``hook.layer()``'s induction scores
    into ``scores[layer]`` and leaves the activation alone."""
    scores = torch.full((3, 4), -7.0)
    for layer, seq_len in [(1, 4), (2, 6)]:
        pattern, expected = _fake_pattern(seq_len)
        original = pattern.clone()
        hook = FakeHook(layer, "hook_pattern")
        out = call(fn, pattern, hook, scores, seq_len, what=f"(hook for layer {layer}, seq_len={seq_len})")
        if out is not None and not (isinstance(out, torch.Tensor) and torch.equal(out, original)):
            raise CheckFailed(
                f"your hook returned {type(out).__name__}, not None. Whatever a hook returns replaces "
                "the activation in the forward pass; a hook that only reads should return None."
            )
        if not torch.equal(pattern, original):
            raise CheckFailed("your hook changed the attention pattern it was given; it should only read it "
                              "(and write into `scores`).")
        if torch.equal(scores[layer], torch.full((4,), -7.0)):
            raise CheckFailed(
                f"after calling your hook with hook.layer() == {layer}, `scores[{layer}]` is unchanged. Write "
                "the layer's scores into the tensor you were given, in place: `scores[hook.layer()] = ...` "
                "(making a new tensor, or rebinding the name `scores`, is invisible to the caller)."
            )
        expect_close(scores[layer], expected, f"scores[{layer}] (seq_len={seq_len})", atol=1e-5, hint=(
            "The test pattern has four heads with induction scores [1, 0, 0.5, 0.25] by construction: "
            "average, over the batch and over the second copy's queries q = seq_len+1 .. 2*seq_len, "
            "the attention from q to key q - seq_len + 1."))
    untouched = scores[0]
    if not torch.equal(untouched, torch.full((4,), -7.0)):
        raise CheckFailed(
            f"`scores[0]` changed to {untouched.tolist()} although the hook was only called for layers 1 "
            "and 2. Use `hook.layer()` to choose the row to write."
        )
    passed("induction_score_hook fills the right row, leaves the pattern")


# --- ablate_head_hook -------------------------------------------------------------------------

def check_ablate_head_hook(fn: Callable) -> None:
    """``fn(z, hook, head)`` zeroes ``z[:, :, head, :]`` and nothing else."""
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(2, 6, 4, 3, generator=g) + 0.5  # [batch, pos, head, d_head]; no zeros by chance
    for head in (2, 0):
        z = z0.clone()
        out = call(fn, z, FakeHook(1, "hook_z"), head, what=f"(head={head})")
        result = out if out is not None else z
        expect_tensor(result, "the ablated z", shape=z0.shape, dims="batch pos head d_head")
        if result[:, :, head].abs().max() > 0:
            raise CheckFailed(
                f"after ablating head {head}, z[:, :, {head}, :] is not all zero (largest entry "
                f"{result[:, :, head].abs().max().item():.3g}). z is [batch, pos, head, d_head]: the head "
                "axis is the third one."
            )
        keep = [h for h in range(4) if h != head]
        if not torch.equal(result[:, :, keep], z0[:, :, keep]):
            raise CheckFailed(
                f"ablating head {head} also changed other heads' z. Only z[:, :, {head}, :] should change."
            )
    passed("ablate_head_hook zeroes exactly one head's z")


# --- loss_per_head_ablation -------------------------------------------------------------------

def _repeated(d_vocab: int, seq_len: int, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    half = torch.randint(3, d_vocab, (batch, seq_len), generator=g)
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), half, half], dim=1)


def _second_copy_loss(logits: torch.Tensor, tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Mean loss of the predictions of the second copy's tokens 2..N (positions seq_len+2 ..)."""
    logp = F.log_softmax(logits[:, seq_len + 1 : -1].float(), dim=-1)
    return -logp.gather(-1, tokens[:, seq_len + 2 :, None]).mean()


def _whole_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, tokens[:, 1:, None]).mean()


@torch.no_grad()
def _reference_ablation(model: Any, tokens: torch.Tensor, seq_len: int, loss_fn) -> torch.Tensor:
    """Remove each head by subtracting its output (z_h @ W_O[h]) from its layer's attention output,
    a route that never edits z, and return loss increases [n_layers, n_heads]."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    base = loss_fn(model(tokens), tokens)
    out = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        w_o = model.W_O[layer].detach()
        for head in range(n_heads):
            saved = {}

            def grab(z, hook, head=head, saved=saved):
                saved["z"] = z[:, :, head].clone()

            def subtract(attn_out, hook, head=head, w_o=w_o, saved=saved):
                return attn_out - saved["z"] @ w_o[head]

            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", grab),
                                                             (f"blocks.{layer}.hook_attn_out", subtract)])
            out[layer, head] = loss_fn(logits, tokens) - base
    return out


def check_loss_per_head_ablation(fn: Callable, model: Any) -> None:
    """``fn(model, tokens, seq_len)`` -> [n_layers, n_heads]: increase in the second copy's loss
    when each head is zero-ablated."""
    seq_len = 20
    tokens = _repeated(model.cfg.d_vocab, seq_len, batch=2, seed=2024).to(model.cfg.device)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    with torch.no_grad():
        base_loss = _second_copy_loss(model(tokens), tokens, seq_len).item()
    got = call(fn, model, tokens, seq_len, what=f"(a batch of 2 repeated sequences, seq_len={seq_len})")
    expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
    expect_tensor(got, "loss_per_head_ablation(...)", shape=(n_layers, n_heads), dims="n_layers n_heads",
                  floating=True)
    got = got.detach().float().cpu()
    with torch.no_grad():
        after = _second_copy_loss(model(tokens), tokens, seq_len).item()
    if abs(after - base_loss) > 1e-4:
        raise CheckFailed("after your function ran, the model's loss changed: it left the model modified. "
                          "Ablate with hooks only, and let run_with_hooks remove them.")
    expected = _reference_ablation(model, tokens, seq_len, lambda lg, tk: _second_copy_loss(lg, tk, seq_len))
    if not torch.allclose(got, expected, atol=2e-3, rtol=1e-2):  # diagnose the usual slips
        if torch.allclose(got, -expected, atol=1e-3) and expected.abs().max() > 1e-3:
            raise CheckFailed("your numbers have the opposite sign of the expected ones: return ablated loss "
                              "minus clean loss, so that a head the model needs gets a positive number.")
        whole = _reference_ablation(model, tokens, seq_len, _whole_loss)
        if torch.allclose(got, whole, atol=1e-3):
            raise CheckFailed(
                "your numbers match the loss over the whole sequence. Measure only the second copy: the "
                "predictions at positions seq_len+1 .. 2*seq_len-1 of the tokens at seq_len+2 .. 2*seq_len "
                "(the first token of the copy follows r_N, and nothing predicts it)."
            )
    expect_close(got, expected, "loss increase per ablated head", atol=2e-3, rtol=1e-2, hint=(
        "For each (layer, head): run the model with a hook on f'blocks.{layer}.attn.hook_z' that zeroes that "
        "head, take the mean loss on the second copy (targets tokens[:, seq_len + 2:]) and subtract the "
        "loss of the clean run on the same tokens."))
    passed("loss_per_head_ablation matches an independent ablation")


# --- head_outputs -----------------------------------------------------------------------------

def check_head_outputs(fn: Callable) -> None:
    """``fn(z, W_O)`` -> [batch, pos, head, d_model], head h's output z_h @ W_O[h]."""
    # Known answer: z all ones, W_O[h] maps (1, 1) to (h + 1) * (1, 2, 0).
    z = torch.ones(1, 2, 3, 2)
    w_o = torch.stack([(h + 1) * torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]) for h in range(3)])
    out = call(fn, z, w_o, what="(z of ones: 1 batch, 2 positions, 3 heads, d_head 2; d_model 3)")
    expect_tensor(out, "head_outputs(z, W_O)", shape=(1, 2, 3, 3), dims="batch pos head d_model",
                  floating=True)
    expected = torch.tensor([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [3.0, 6.0, 0.0]]).expand(1, 2, 3, 3)
    expect_close(out, expected, "head_outputs on z of ones", hint=(
        "Head h's output at a position is the vector z[b, p, h] (length d_head) times the matrix "
        "W_O[h] (d_head x d_model); keep the head axis, do not sum over it."))
    # Invariant: the heads' outputs add up to the layer's output, concatenated z times stacked W_O.
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 5, 4, 3, generator=g)
    w_o = torch.randn(4, 3, 7, generator=g)
    out = call(fn, z, w_o, what="(random z [2, 5, 4, 3], W_O [4, 3, 7])")
    expect_tensor(out, "head_outputs(z, W_O)", shape=(2, 5, 4, 7), dims="batch pos head d_model")
    expect_close(out.sum(dim=2), z.flatten(-2) @ w_o.flatten(0, 1), "the sum over heads of your outputs",
                 hint="Summed over heads they should give the attention layer's output (without b_O).")
    passed("head_outputs splits a layer's output into its heads")


# --- logit_attribution ------------------------------------------------------------------------

def check_logit_attribution(fn: Callable) -> None:
    """``fn(embed, pos_embed, head_out, W_U, tokens)`` -> [pos - 1, 2 + n_heads_total]."""
    # Worked by hand: W_U's columns are (1, 0), (0, 1), (2, -1); tokens 0, 2, 1.
    w_u = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    tokens = torch.tensor([0, 2, 1])
    embed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    pos_embed = torch.tensor([[0.0, 1.0], [1.0, 0.0], [7.0, 7.0]])
    head_out = torch.tensor([[[1.0, 1.0]], [[2.0, 0.0]], [[9.0, 9.0]]])  # [pos, 1 head, d_model]
    out = call(fn, embed, pos_embed, head_out, w_u, tokens,
               what="(3 positions, d_model 2, one head, d_vocab 3)")
    expect_tensor(out, "logit_attribution(...)", shape=(2, 3), dims="pos-1 n_components", floating=True)
    expected = torch.tensor([[2.0, -1.0, 1.0], [1.0, 0.0, 0.0]])
    if torch.allclose(out.float(), torch.tensor([[1.0, 0.0, 1.0], [-1.0, 2.0, 4.0]])):
        raise CheckFailed("you scored each position against its own token. Position i predicts "
                          "tokens[i + 1]: use the unembedding columns W_U[:, tokens[1:]].")
    expect_close(out.float(), expected, "logit_attribution on the hand-made example", hint=(
        "Row i, column c should be component c's vector at position i dotted with W_U[:, tokens[i + 1]], "
        "the column of the token that comes next; the columns are [embed, pos_embed, head 0, head 1, ...] "
        "and the last position (which predicts nothing) is dropped."))
    # Invariant: on random inputs the components add up to the full residual stream's logit.
    g = torch.Generator().manual_seed(2)
    pos, d_model, n_heads, d_vocab = 6, 5, 4, 11
    embed, pos_embed = torch.randn(pos, d_model, generator=g), torch.randn(pos, d_model, generator=g)
    head_out = torch.randn(pos, n_heads, d_model, generator=g)
    w_u = torch.randn(d_model, d_vocab, generator=g)
    tokens = torch.randint(0, d_vocab, (pos,), generator=g)
    out = call(fn, embed, pos_embed, head_out, w_u, tokens, what="(random inputs, 4 heads)")
    expect_tensor(out, "logit_attribution(...)", shape=(pos - 1, 2 + n_heads), dims="pos-1 n_components")
    resid = embed + pos_embed + head_out.sum(1)
    full = (resid @ w_u)[:-1].gather(-1, tokens[1:, None])[:, 0]
    expect_close(out.sum(-1), full, "the sum of your attributions over components", hint=(
        "Summed over components they should equal the correct next token's logit computed from the "
        "whole residual stream, (embed + pos_embed + sum of heads) @ W_U."))
    passed("logit_attribution adds up to the correct-token logit")
