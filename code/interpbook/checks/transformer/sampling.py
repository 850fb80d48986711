"""Checks for section 4, "Sampling" (book/chapters/transformer/04-sampling.md).

Answers are known by construction: empirical frequencies of sampled tokens against
``softmax(logits / T)`` on hand-built logits; hand-worked masks for top-k, top-p and the
frequency penalty; for beam search, a five-token bigram "model" whose best sequence the check
finds by enumerating every continuation; and, for the key-value cache, the activations and
logits of the reference model itself (a cached run must reproduce the uncached one), with a
count of the positions fed through the model to prove the cache is used.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed
from interpbook.zoo.scratch import GPTConfig, load_weights

__all__ = [
    "check_attention_with_cache",
    "check_beam_search",
    "check_forward_with_cache",
    "check_frequency_penalty",
    "check_generate_with_cache",
    "check_sample_next_token",
    "check_top_k_logits",
    "check_top_p_logits",
]

NEG_INF = float("-inf")
TEXT = "King.\nWhat say you, my lord? Speak, and tell me true: is it the king that comes?"


def _kept(out: torch.Tensor) -> list[list[int]]:
    """The indices of the finite entries of each row, sorted."""
    return [sorted(torch.nonzero(torch.isfinite(row)).flatten().tolist()) for row in out]


def _expect_filtered(out: Any, logits: torch.Tensor, want: list[list[int]], what: str,
                     hint: str = "") -> None:
    """``out`` keeps exactly the indices ``want`` of each row of ``logits`` and is -inf elsewhere."""
    expect_tensor(out, what, tuple(logits.shape), "batch, d_vocab", floating=True)
    bad = out[~torch.isfinite(out)]
    if (bad != NEG_INF).any():
        raise CheckFailed(f"{what}: the removed entries should be -inf (so that softmax gives them probability "
                          f"0); found {bad[bad != NEG_INF][:3].tolist()}.")
    got = _kept(out)
    if got != want:
        raise CheckFailed(f"{what} kept the tokens {got} (per row); expected {want}." + (f" {hint}" if hint else ""))
    finite = torch.isfinite(out)
    if not torch.equal(out[finite], logits[finite]):
        raise CheckFailed(f"{what}: the kept logits should be unchanged; some of them were altered.")


def _sample_freqs(sample_next_token: Callable, base: torch.Tensor, temperature: float, n: int,
                  seed: int) -> torch.Tensor:
    """Frequencies [rows of base, d_vocab] of ``n`` samples from each row of ``base``."""
    logits = base.repeat(n, 1)  # row i of the batch comes from base[i % len(base)]
    g = torch.Generator().manual_seed(seed)
    out = call(sample_next_token, logits, temperature, g, what=f"(temperature={temperature})")
    expect_tensor(out, f"sample_next_token(logits [{len(logits)}, {base.shape[1]}], {temperature})",
                  (len(logits),), "batch")
    if out.dtype != torch.int64:
        raise CheckFailed(f"sample_next_token should return token ids as int64 (torch.long); got {out.dtype}.")
    if out.min() < 0 or out.max() >= base.shape[1]:
        raise CheckFailed(f"sample_next_token returned ids outside [0, {base.shape[1]}): {out.min()}..{out.max()}.")
    out = out.view(n, len(base))
    return torch.stack([torch.bincount(out[:, i], minlength=base.shape[1]).float() / n
                        for i in range(len(base))])


def check_sample_next_token(sample_next_token: Callable) -> None:
    # Temperature 0: the argmax of every row, no randomness.
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.9], [3.0, 0.0, 0.0, 0.0], [-5.0, -4.0, -3.0, -2.0]])
    out = call(sample_next_token, logits, 0.0, torch.Generator().manual_seed(0),
               what="(temperature=0 means greedy: return each row's argmax, without dividing by 0)")
    expect_tensor(out, "sample_next_token(logits [3, 4], temperature=0)", (3,), "batch")
    if out.tolist() != [1, 0, 3]:
        raise CheckFailed(f"With temperature 0 each row's most likely token should come back: [1, 0, 3]; got "
                          f"{out.tolist()}. Take logits.argmax(-1) (over the vocabulary axis).")

    base = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.5, 3.0, -2.0]])
    n = 20_000
    for temperature in (0.5, 2.0):
        freqs = _sample_freqs(sample_next_token, base, temperature, n, seed=1)
        want = (base / temperature).softmax(-1)
        if torch.allclose(freqs, want, atol=0.015):
            continue
        hint = "Sample from softmax(logits / temperature), one token per row, with torch.multinomial."
        if torch.allclose(freqs, (base * temperature).softmax(-1), atol=0.015):
            hint = ("These are the frequencies of softmax(logits * temperature): divide the logits by the "
                    "temperature instead (a high temperature should flatten the distribution).")
        elif torch.allclose(freqs, base.softmax(-1), atol=0.015):
            hint = "These are the frequencies of softmax(logits): the temperature was not applied."
        elif torch.allclose(freqs[0], freqs[1], atol=0.015):
            hint = "Both rows gave the same frequencies: sample each row from its own distribution."
        raise CheckFailed(f"At temperature {temperature}, the frequencies of the sampled tokens should be close to "
                          f"softmax(logits / {temperature}) = {want.numpy().round(3).tolist()}; yours "
                          f"{freqs.numpy().round(3).tolist()} over {n} samples per row. {hint}")

    a = _sample_freqs(sample_next_token, base, 1.0, 200, seed=7)
    b = _sample_freqs(sample_next_token, base, 1.0, 200, seed=7)
    if not torch.equal(a, b):
        raise CheckFailed("Two calls with generators seeded alike gave different samples: pass `generator` to "
                          "torch.multinomial so that sampling can be repeated.")
    passed("sample_next_token: argmax at temperature 0, softmax(logits / T) otherwise, reproducible")


def check_top_k_logits(top_k_logits: Callable) -> None:
    logits = torch.tensor([[0.3, 2.5, -1.0, 1.7, 0.9, -0.2],
                           [1.1, -2.0, 0.4, 3.0, 2.2, 0.0]])
    original = logits.clone()
    # Sorted: row 0 -> 1 (2.5), 3 (1.7), 4 (0.9), 0 (0.3), ...; row 1 -> 3, 4, 0, 2, ...
    cases = {3: [[1, 3, 4], [0, 3, 4]], 1: [[1], [3]], 6: [list(range(6))] * 2}
    for k, want in cases.items():
        out = call(top_k_logits, logits.clone(), k)
        hint = "Keep the k largest logits of each row (logits.topk(k, dim=-1)) and set the rest to -inf."
        if isinstance(out, torch.Tensor) and out.shape == logits.shape:
            n_kept = [len(r) for r in _kept(out)]
            if n_kept == [k + 1, k + 1]:
                hint = (f"You kept k + 1 = {k + 1} tokens per row: the k-th largest logit (index k - 1 of the "
                        "descending sort) is the smallest one to keep.")
            elif n_kept == [k - 1, k - 1]:
                hint = f"You kept k - 1 = {k - 1} tokens per row: the k-th largest logit should be kept too."
        _expect_filtered(out, logits, want, f"top_k_logits(logits, k={k})", hint)
    call(top_k_logits, logits, 2)
    if not torch.equal(logits, original):
        raise CheckFailed("top_k_logits changed the logits it was given: return a new tensor (masked_fill, or "
                          "clone before assigning) so the caller's logits stay intact.")
    passed("top_k_logits: the k largest logits of each row, the rest -inf")


def check_top_p_logits(top_p_logits: Callable) -> None:
    probs = torch.tensor([[0.05, 0.50, 0.15, 0.30], [0.12, 0.18, 0.62, 0.08]])
    logits = probs.log() + torch.tensor([[1.0], [-2.0]])  # a constant per row changes no probability
    original = logits.clone()
    # Row 0 sorted: 1 (0.50), 3 (0.30), 2 (0.15), 0 (0.05); cumulative 0.50, 0.80, 0.95, 1.
    # Row 1 sorted: 2 (0.62), 1 (0.18), 0 (0.12), 3 (0.08); cumulative 0.62, 0.80, 0.92, 1.
    cases = {0.7: [[1, 3], [1, 2]], 0.4: [[1], [2]], 0.9: [[1, 2, 3], [0, 1, 2]], 0.55: [[1, 3], [2]]}
    for p, want in cases.items():
        out = call(top_p_logits, logits.clone(), p)
        hint = ("Sort the probabilities in descending order, take their cumulative sum, and keep each token "
                "whose preceding cumulative sum (excluding itself) is still below p.")
        if isinstance(out, torch.Tensor) and out.shape == logits.shape:
            got = _kept(out)
            if all(set(g) < set(w) and len(g) == len(w) - 1 for g, w in zip(got, want, strict=True)) \
                    or any(not g for g in got):
                hint = ("You dropped the token whose probability carries the total past p (and with it, when "
                        "the top token alone exceeds p, every token). Keep it: a token is kept when the "
                        "cumulative probability *before* it is below p.")
        _expect_filtered(out, logits, want, f"top_p_logits(logits, p={p})", hint)
    call(top_p_logits, logits, 0.7)
    if not torch.equal(logits, original):
        raise CheckFailed("top_p_logits changed the logits it was given: return a new tensor.")
    passed("top_p_logits: the smallest set of most likely tokens reaching p, the rest -inf")


def check_frequency_penalty(frequency_penalty: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, generator=g)
    original = logits.clone()
    tokens = torch.tensor([[3, 3, 3, 1, 5], [0, 2, 2, 5, 0]])
    counts = torch.tensor([[0.0, 1, 0, 3, 0, 1], [2.0, 0, 2, 0, 0, 1]])
    out = call(frequency_penalty, logits.clone(), tokens, 0.5)
    expect_tensor(out, "frequency_penalty(logits [2, 6], tokens [2, 5], 0.5)", (2, 6), "batch, d_vocab",
                  floating=True)
    hint = "Count each token's occurrences in its own row of tokens_so_far and subtract penalty * count."
    if torch.allclose(out, logits - 0.5 * (counts > 0).float(), atol=1e-6):
        hint = ("You subtracted the penalty once for every token that appeared (a *presence* penalty): a "
                "frequency penalty grows with the count, so token 3, seen three times in row 0, loses 1.5.")
    elif torch.allclose(out, logits - 0.5 * counts.sum(0), atol=1e-6):
        hint = "You counted over the whole batch: each row has its own history and its own counts."
    elif torch.allclose(out, logits + 0.5 * counts, atol=1e-6):
        hint = "You added the penalty: repeated tokens should become less likely, so subtract it."
    expect_close(out, logits - 0.5 * counts, "frequency_penalty on hand-made histories", atol=1e-6, hint=hint)
    same = call(frequency_penalty, logits.clone(), tokens, 0.0)
    expect_close(same, logits, "frequency_penalty with penalty 0", atol=1e-6)
    if not torch.equal(logits, original):
        raise CheckFailed("frequency_penalty changed the logits it was given: return a new tensor.")
    passed("frequency_penalty: penalty x count, per row")


# A five-token bigram "model": row i is the distribution of the token after token i. From 0,
# greedy goes to 1, then to 2 (0.40, the likeliest) and stalls at 2 (0.31); going 1 -> 0
# (0.31) instead leads back to 1 with 0.71, a likelier sequence overall.
BIGRAM = torch.tensor([[0.20, 0.71, 0.03, 0.03, 0.03],
                       [0.31, 0.03, 0.40, 0.17, 0.09],
                       [0.22, 0.13, 0.31, 0.12, 0.22],
                       [0.19, 0.02, 0.03, 0.73, 0.03],
                       [0.07, 0.61, 0.21, 0.10, 0.01]], dtype=torch.float64)


class _BigramModel:
    """``log_prob_fn`` for the bigram, which also records the shape of every call."""

    def __init__(self) -> None:
        self.log_p = BIGRAM.float().log()
        self.widest = 0

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2:
            raise CheckFailed(f"log_prob_fn takes the beams as one [beams, pos] tensor; it was given "
                              f"{getattr(tokens, 'shape', type(tokens).__name__)}.")
        self.widest = max(self.widest, tokens.shape[0])
        return self.log_p[tokens[:, -1]]


def _score(seq: list[int], n_prompt: int) -> float:
    return float(sum(BIGRAM[a, b].log() for a, b in itertools.pairwise(seq[n_prompt - 1:])))


def _best(prompt: list[int], n_steps: int) -> tuple[list[int], float]:
    """The likeliest continuation, by enumerating all of them."""
    seqs = [prompt + list(c) for c in itertools.product(range(len(BIGRAM)), repeat=n_steps)]
    return max(((s, _score(s, len(prompt))) for s in seqs), key=lambda x: x[1])


def _greedy(prompt: list[int], n_steps: int) -> list[int]:
    seq = list(prompt)
    for _ in range(n_steps):
        seq.append(int(BIGRAM[seq[-1]].argmax()))
    return seq


def check_beam_search(beam_search: Callable) -> None:
    prompt, n_steps = [3, 0], 3
    best, best_score = _best(prompt, n_steps)
    greedy = _greedy(prompt, n_steps)
    assert best != greedy  # the point of the example
    # n_beams = 25 = 5 ** (n_steps - 1) keeps every prefix, so any beam search is exhaustive here.
    for n_beams, want, what in ((1, greedy, "with one beam it is greedy decoding"),
                                (2, best, "two beams are enough on this model"),
                                (25, best, "25 beams keep every two-token prefix, so the search is exhaustive")):
        fn = _BigramModel()
        out = call(beam_search, fn, torch.tensor(prompt), n_beams, n_steps,
                   what="(a five-token bigram model)")
        if not isinstance(out, tuple) or len(out) != 2:
            raise CheckFailed(f"beam_search should return a pair (tokens, score); got {type(out).__name__}.")
        tokens, score = out
        expect_tensor(tokens, f"The tokens returned by beam_search(..., n_beams={n_beams}, n_steps={n_steps})",
                      (len(prompt) + n_steps,), "prompt + n_steps")
        seq = tokens.tolist()
        if seq[:len(prompt)] != prompt:
            raise CheckFailed(f"The returned tokens should start with the prompt {prompt}; got {seq}.")
        if fn.widest > n_beams:
            raise CheckFailed(f"log_prob_fn was called on {fn.widest} beams at once, more than n_beams = {n_beams}: "
                              "keep only the n_beams best candidates after each step.")
        hint = ""
        if seq == greedy and want != greedy:
            hint = ("That is the greedy sequence: the candidates for the next step are the expansions of "
                    "*every* kept beam, ranked together by their total log-probability.")
        elif abs(float(score) - _score(seq, len(prompt))) > 1e-4:
            hint = (f"The score you returned, {float(score):.4f}, is not the total log-probability of your "
                    f"tokens ({_score(seq, len(prompt)):.4f}): rank candidates by the sum of the log-probs of "
                    "all generated tokens, not by the last step's.")
        if seq != want:
            raise CheckFailed(f"beam_search with {n_beams} beam(s) returned {seq} (log-probability "
                              f"{_score(seq, len(prompt)):.4f}); expected {want} ({_score(want, len(prompt)):.4f}): "
                              f"{what}. " + (hint or "Keep the n_beams highest-scoring candidates at every step."))
        if abs(float(score) - _score(seq, len(prompt))) > 1e-4:
            raise CheckFailed(hint)
    passed(f"beam_search: finds {best} (log-prob {best_score:.3f}) where greedy finds {greedy} "
           f"({_score(greedy, len(prompt)):.3f})")


def _layer0(Attention: type, model: Any) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The learner's Attention with layer 0's weights, and the activations on two sequences."""
    cfg = GPTConfig.from_model(model)
    attn = call(Attention, cfg, what="(the GPTConfig of the reference model)")
    try:
        load_weights(attn, model, "blocks.0.attn")
    except ValueError as e:
        raise CheckFailed(f"Could not copy layer 0's attention weights into your Attention: {e}") from None
    tokens = _tokens(model)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return attn.to(model.cfg.device).eval(), {k: v for k, v in cache.items() if k.startswith("blocks.0.")}


def _tokens(model: Any) -> torch.Tensor:
    """Two sequences: the text, and its tokens reversed after BOS."""
    tokens = model.to_tokens(TEXT)[0]
    return torch.stack([tokens, torch.cat([tokens[:1], tokens[1:].flip(0)])])


CHUNKS = (6, 4, 1, 5)  # prefix, then several tokens at once, then one, then several again


def _spans(n: int) -> list[tuple[int, int]]:
    spans, start = [], 0
    for size in CHUNKS:
        spans.append((start, start + size))
        start += size
    return spans + [(start, n)]


def check_attention_with_cache(attention_with_cache: Callable, Attention: type, model: Any) -> None:
    attn, acts = _layer0(Attention, model)
    x, want = acts["blocks.0.ln1.hook_out"], acts["blocks.0.hook_attn_out"]
    want_k, want_v = acts["blocks.0.attn.hook_k"], acts["blocks.0.attn.hook_v"]
    batch, n, _ = x.shape
    h, dh = attn.W_Q.shape[0], attn.W_Q.shape[2]
    past_k = past_v = None
    for start, end in _spans(n):
        what = f"(positions {start}..{end - 1}, with {start} cached)"
        with torch.no_grad():
            out = call(attention_with_cache, attn, x[:, start:end], past_k, past_v, what=what)
        if not isinstance(out, tuple) or len(out) != 3:
            raise CheckFailed(f"attention_with_cache should return (out, k_all, v_all); got {type(out).__name__}.")
        out, past_k, past_v = out
        expect_tensor(out, f"The output {what}", (batch, end - start, x.shape[-1]), "batch, new, d_model",
                      floating=True)
        for name, t in (("k_all", past_k), ("v_all", past_v)):
            expect_tensor(t, f"{name} {what}", (batch, end, h, dh), "batch, past + new, n_heads, d_head",
                          floating=True)
        expect_close(past_k, want_k[:, :end], f"k_all {what} against blocks.0.attn.hook_k", atol=2e-5,
                     hint="k_all is the cached keys followed by the new ones, concatenated along the position axis.")
        expect_close(past_v, want_v[:, :end], f"v_all {what} against blocks.0.attn.hook_v", atol=2e-5)
        hint = "Queries come from the new positions only; keys and values from all positions, cached and new."
        if start > 0 and end - start > 1:
            hint = (f"Query i of the new block sits at position {start} + i: it may attend to keys "
                    f"0..{start} + i, so the mask over the [new, past + new] scores is "
                    "triu(..., diagonal=past + 1), offset by the past length.")
        expect_close(out, want[:, start:end], f"The attention output {what} against blocks.0.hook_attn_out",
                     atol=2e-5, hint=hint)
    passed("attention_with_cache: chunk by chunk, it reproduces layer 0's uncached attention, keys and values")


def _gpt(GPT: type, model: Any) -> torch.nn.Module:
    cfg = GPTConfig.from_model(model)
    gpt = call(GPT, cfg, what="(the GPTConfig of the reference model)")
    try:
        load_weights(gpt, model)
    except ValueError as e:
        raise CheckFailed(f"Could not copy the model's weights into your GPT: {e}") from None
    return gpt.to(model.cfg.device).eval()


def check_forward_with_cache(forward_with_cache: Callable, GPT: type, model: Any) -> None:
    gpt = _gpt(GPT, model)
    tokens = _tokens(model)
    with torch.no_grad():
        want = model(tokens)
    batch, n = tokens.shape
    cfg = GPTConfig.from_model(model)
    cache = None
    for start, end in _spans(n):
        what = f"(positions {start}..{end - 1}, with {start} cached)"
        with torch.no_grad():
            out = call(forward_with_cache, gpt, tokens[:, start:end], cache, what=what)
        if not isinstance(out, tuple) or len(out) != 2:
            raise CheckFailed(f"forward_with_cache should return (logits, cache); got {type(out).__name__}.")
        logits, cache = out
        expect_tensor(logits, f"The logits {what}", (batch, end - start, cfg.d_vocab), "batch, new, d_vocab",
                      floating=True)
        if not isinstance(cache, list | tuple) or len(cache) != cfg.n_layers:
            raise CheckFailed(f"The cache should be a list with one (k, v) pair per layer ({cfg.n_layers}); got "
                              f"{type(cache).__name__} of length {len(cache) if hasattr(cache, '__len__') else '?'}.")
        for layer, kv in enumerate(cache):
            if not isinstance(kv, tuple | list) or len(kv) != 2:
                raise CheckFailed(f"Entry {layer} of the cache should be a pair (k, v).")
            for name, t in zip("kv", kv, strict=True):
                expect_tensor(t, f"The cached {name} of layer {layer} {what}",
                              (batch, end, cfg.n_heads, cfg.d_head), "batch, past + new, n_heads, d_head")
        hint = "Each block's attention takes its own layer's cache; the MLP and LayerNorms need no cache."
        if start > 0:
            hint = (f"The new tokens sit at positions {start}..{end - 1}: add W_pos[{start}:{end}], not the "
                    "embedding of positions 0.., and give each block its own layer's (k, v).")
        expect_close(logits, want[:, start:end], f"The logits {what} against the reference model's", atol=1e-4,
                     hint=hint)
    passed("forward_with_cache: chunk by chunk, the same logits as one uncached forward pass")


def check_generate_with_cache(generate_with_cache: Callable, GPT: type, model: Any) -> None:
    gpt = _gpt(GPT, model)
    prompt = model.to_tokens("Ham.\nMy lord, I")
    n_new = 20
    want = prompt
    with torch.no_grad():
        for _ in range(n_new):  # greedy decoding with the reference model, uncached
            want = torch.cat([want, model(want)[:, -1].argmax(-1, keepdim=True)], dim=1)
    fed = {"embed": 0, "ln1": 0}

    def counter(key: str) -> Callable:
        def hook(module: Any, inputs: tuple) -> None:
            fed[key] += inputs[0].shape[1]
        return hook

    handles = [gpt.embed.register_forward_pre_hook(counter("embed")),
               gpt.blocks[0].ln1.register_forward_pre_hook(counter("ln1"))]
    try:
        with torch.no_grad():
            out = call(generate_with_cache, gpt, prompt, n_new, what="(greedy, 20 new tokens)")
    finally:
        for handle in handles:
            handle.remove()
    expect_tensor(out, f"generate_with_cache(gpt, prompt [1, {prompt.shape[1]}], {n_new})",
                  (1, prompt.shape[1] + n_new), "1, pos + n_new")
    if not torch.equal(out[:, :prompt.shape[1]], prompt):
        raise CheckFailed("The returned tokens should start with the prompt.")
    if not torch.equal(out, want):
        first = int((out != want).int().argmax())
        raise CheckFailed(f"Your tokens differ from uncached greedy decoding from position {first} on: yours "
                          f"{model.to_string(out[0, first:first + 5])!r}..., expected "
                          f"{model.to_string(want[0, first:first + 5])!r}.... Feed the prompt once, then only "
                          "the newest token, at its true position, with the cache from the previous step, and "
                          "take the argmax of the last logits.")
    limit = prompt.shape[1] + n_new
    if max(fed.values()) > limit:
        raise CheckFailed(f"Generating {n_new} tokens from a {prompt.shape[1]}-token prompt pushed "
                          f"{max(fed.values())} positions through the model; with the cache each position goes "
                          f"through once (at most {limit}). Feed only the new token after the first step.")
    passed("generate_with_cache: the same tokens as uncached greedy decoding, each position computed once")
