"""Checks for section 5, "Steering vectors from contrast pairs"
(book/chapters/function_vectors/05-contrast-steering.md).

``contrast_vector`` runs on the shipped ``icl-tasks`` model, wrapped once per module in
nnsight's ``TransformersModel``, with two groups of different sizes (5 capital prompts against 3
random-label ones, equal lengths, no padding; random labels, unlike shuffled ones, change the
stream enough that the wrong answers below are told apart). Its reference comes from an independent route,
plain PyTorch forward hooks on ``model.transformer.h[layer]``, and ``output_hidden_states=True``
names the mistakes (``hidden_states[l + 1]`` is the stream after block ``l``, and the last entry
has ``ln_f`` applied). ``mean_difference`` gets hand-made activations whose two means are planted exactly and
whose two groups have different sizes, so that a difference of sums is told apart.
``contrast_prompts`` is read back by parsing its prompts against the task's training and
held-out pairs. ``match_norm`` gets hand-made vectors of known, different norms, none of them 1.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch

from interpbook.checks import CheckFailed, call, expect_tensor, passed
from interpbook.datasets import icl_tasks as data

__all__ = [
    "check_mean_difference",
    "check_contrast_vector",
    "check_contrast_prompts",
    "check_match_norm",
]


@lru_cache(maxsize=1)
def _setup():
    """The model, its tokenizer and an nnsight wrapper around the same model object."""
    from nnsight import TransformersModel

    from interpbook.zoo import icl_tasks as zi
    from interpbook.zoo import load_model

    model = load_model("icl-tasks")
    tokenizer = zi.load_tokenizer()
    return model, tokenizer, TransformersModel(model, tokenizer=tokenizer)


def _ids(tokenizer, prompts: list[str], device) -> torch.Tensor:
    return tokenizer(prompts, return_tensors="pt")["input_ids"].to(device)


def _block_outputs(model, ids: torch.Tensor) -> list[torch.Tensor]:
    """The output of every block (all positions), read with plain forward hooks."""
    outs: dict[int, torch.Tensor] = {}

    def keep(layer: int):
        def hook(module, inputs, output):
            outs[layer] = (output[0] if isinstance(output, tuple) else output).detach().clone()
        return hook

    handles = [block.register_forward_hook(keep(i)) for i, block in enumerate(model.transformer.h)]
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in handles:
            h.remove()
    return [outs[i] for i in range(len(model.transformer.h))]


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float().to(a.device), atol=atol, rtol=1e-3)


# --- contrast_vector --------------------------------------------------------------------------

def check_contrast_vector(fn: Callable) -> None:
    """``fn(lm, prompts_a, prompts_b, layer)``: mean over prompts_a minus mean over prompts_b of
    the residual stream after block ``layer`` at the final position, shape [d_model]."""
    model, tokenizer, lm = _setup()
    prompts_a, _ = data.sample_prompts("capital", n=5, n_examples=3, seed=7)
    prompts_b, _ = data.sample_prompts("capital", n=3, n_examples=3, seed=7, random_labels=True)
    ids_a, ids_b = _ids(tokenizer, prompts_a, model.device), _ids(tokenizer, prompts_b, model.device)
    blocks_a, blocks_b = _block_outputs(model, ids_a), _block_outputs(model, ids_b)
    with torch.no_grad():
        hidden_a = model(ids_a, output_hidden_states=True).hidden_states  # [embeddings, block 0, ..., ln_f(last)]
        hidden_b = model(ids_b, output_hidden_states=True).hidden_states
    n_layers, d_model = len(blocks_a), model.config.n_embd

    def diff(acts_a: torch.Tensor, acts_b: torch.Tensor) -> torch.Tensor:
        return (acts_a[:, -1].mean(0) - acts_b[:, -1].mean(0)).cpu()

    after = [diff(a, b) for a, b in zip(blocks_a, blocks_b)]  # after block k, k = 0 .. n_layers - 1
    for layer in range(n_layers):
        out = call(fn, lm, list(prompts_a), list(prompts_b), layer,
                   what=f"(5 capital prompts against 3 random-label ones, layer={layer})")
        out = expect_tensor(out, f"contrast_vector(lm, prompts_a, prompts_b, layer={layer})", floating=True)
        if out.ndim != 1:
            raise CheckFailed(f"contrast_vector returned shape {list(out.shape)} for layer {layer}; expected one vector "
                              f"[d_model] = [{d_model}]: the final position of one layer, averaged over the prompts.")
        expect_tensor(out, f"contrast_vector(..., layer={layer})", shape=(d_model,), dims="d_model")
        out = out.detach().cpu().float()
        want = after[layer]
        if _close(out, want):
            continue
        if _close(out, -want):
            raise CheckFailed(f"for layer={layer} your vector points the wrong way: mean(b) - mean(a). It should point "
                              "from prompts_b towards prompts_a, the behaviour we want to add.")
        if _close(out, diff(hidden_a[layer], hidden_b[layer])):
            before = "the embeddings" if layer == 0 else f"the output of block {layer - 1}"
            raise CheckFailed(f"for layer={layer} you read the stream *before* block {layer} ({before}, "
                              f"hidden_states[{layer}]): off by one. Index 0 of hidden_states is the embeddings; "
                              f"the stream after block {layer} is hidden_states[{layer + 1}], or "
                              f"final_residuals(...)[:, {layer}].")
        if layer == n_layers - 1 and _close(out, diff(hidden_a[-1], hidden_b[-1])):
            raise CheckFailed(f"for the last block (layer={layer}) you used hidden_states[-1], which transformers "
                              "returns with the final layer norm ln_f applied: not the residual stream. Read the "
                              "block's own output, as final_residuals does.")
        for k in range(n_layers):
            if k != layer and _close(out, after[k]):
                raise CheckFailed(f"for layer={layer} you returned the difference after block {k}: use index "
                                  f"[:, {layer}] of final_residuals, the stream after block {layer}.")
        n_a, n_b = len(prompts_a), len(prompts_b)
        sums = (blocks_a[layer][:, -1].sum(0) - blocks_b[layer][:, -1].sum(0)).cpu()
        if _close(out, sums) or _close(out, sums / (n_a + n_b)):
            raise CheckFailed(f"for layer={layer} you combined sums over the prompts; the two groups have {n_a} and "
                              f"{n_b} prompts: take each group's mean (mean_difference).")
        if _close(out, (blocks_a[layer].mean(1).mean(0) - blocks_b[layer].mean(1).mean(0)).cpu()):
            raise CheckFailed(f"for layer={layer} you averaged over positions too; keep only the final position "
                              "(index -1), where the model predicts the answer.")
        diff_max = (out - want).abs().max().item()
        raise CheckFailed(f"for layer={layer} your vector differs from mean(a) - mean(b) of the stream after block "
                          f"{layer} at the final position (largest difference {diff_max:.3g}).")
    passed(f"contrast_vector is the mean difference after each of the {n_layers} blocks at the final position.")


# --- mean_difference --------------------------------------------------------------------------

def check_mean_difference(fn: Callable) -> None:
    """``fn(acts_a [n, d], acts_b [m, d])``: mean of a minus mean of b, shape [d]."""
    g = torch.Generator().manual_seed(3)
    d, n, m = 6, 7, 4
    mu_a, mu_b = torch.randn(d, generator=g) + 2.0, torch.randn(d, generator=g) - 1.0
    noise_a, noise_b = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
    acts_a = mu_a + noise_a - noise_a.mean(0)  # the mean of acts_a is exactly mu_a
    acts_b = mu_b + noise_b - noise_b.mean(0)
    out = call(fn, acts_a.clone(), acts_b.clone(), what=f"(acts_a [{n}, {d}] with mean mu_a, acts_b [{m}, {d}] "
               "with mean mu_b)")
    out = expect_tensor(out, "mean_difference(acts_a, acts_b)", floating=True)
    if out.shape == (n, d) or out.shape == (m, d) or out.ndim == 2:
        raise CheckFailed(f"mean_difference returned shape {list(out.shape)}; expected one vector of shape [{d}]: "
                          "average each group over its rows (dim 0) before subtracting.")
    expect_tensor(out, "mean_difference(acts_a, acts_b)", shape=(d,), dims="d")
    out = out.detach().cpu().float()
    want = mu_a - mu_b
    if _close(out, want, atol=1e-5):
        passed("mean_difference is the mean of the first group minus the mean of the second.")
        return
    if _close(out, -want, atol=1e-5):
        raise CheckFailed("your vector points the wrong way: you returned mean(acts_b) - mean(acts_a). The steering "
                          "vector points from the contrast (b) towards the behaviour we want (a): mean(a) - mean(b).")
    if _close(out, acts_a.sum(0) - acts_b.sum(0), atol=1e-4):
        raise CheckFailed(f"you returned the difference of the sums; with {n} rows in acts_a and {m} in acts_b the "
                          "sums scale with the group sizes. Take each group's mean.")
    if _close(out, (acts_a.sum(0) - acts_b.sum(0)) / (n + m), atol=1e-4) or _close(
            out, (acts_a.sum(0) - acts_b.sum(0)) / n, atol=1e-4):
        raise CheckFailed(f"you divided both sums by one count; the groups have different sizes ({n} and {m}): "
                          "divide each by its own number of rows (acts.mean(0)).")
    diff = (out - want).abs().max().item()
    raise CheckFailed(f"mean_difference differs from mean(acts_a) - mean(acts_b) by up to {diff:.3g} (the two groups "
                      f"have {n} and {m} rows).")


# --- contrast_prompts -------------------------------------------------------------------------

def _parse(prompt: str) -> tuple[list[tuple[str, str]], str]:
    """``x1 -> y1 , x2 -> y2 , q ->`` -> ([(x1, y1), (x2, y2)], q); raises ValueError if malformed."""
    parts = [p.strip() for p in prompt.split(f" {data.COMMA} ")]
    examples = []
    for part in parts[:-1]:
        x, arrow, y = part.split(" ")
        if arrow != data.ARROW:
            raise ValueError(part)
        examples.append((x, y))
    q, arrow = parts[-1].split(" ")
    if arrow != data.ARROW:
        raise ValueError(parts[-1])
    return examples, q


def check_contrast_prompts(fn: Callable) -> None:
    """``fn(task_a, task_b, queries, n_examples, seed)``: two lists of prompts, one per query,
    each with ``n_examples`` distinct *training* pairs of its task (none with the query as input),
    ending in the same query."""
    train, held = data.split_pairs()
    french = dict(data.task_pairs()["french"])
    queries = [x for x, _ in train["antonym"] if x in french][:12]
    n_ex = 4
    out = call(fn, "antonym", "french", list(queries), n_ex, 0,
               what=f"(task_a='antonym', task_b='french', {len(queries)} adjective queries, n_examples={n_ex})")
    if not (isinstance(out, tuple) and len(out) == 2):
        raise CheckFailed(f"contrast_prompts should return a tuple (prompts_a, prompts_b); got {type(out).__name__}.")
    for side, prompts, task in (("a", out[0], "antonym"), ("b", out[1], "french")):
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise CheckFailed(f"prompts_{side} should be a list of strings.")
        if len(prompts) != len(queries):
            raise CheckFailed(f"prompts_{side} has {len(prompts)} prompts for {len(queries)} queries; write one "
                              "prompt per query, in the order of `queries`.")
        other = "french" if task == "antonym" else "antonym"
        train_pairs, held_pairs = set(train[task]), set(held[task])
        for i, (prompt, q) in enumerate(zip(prompts, queries)):
            try:
                examples, last = _parse(prompt)
            except ValueError:
                raise CheckFailed(f"prompts_{side}[{i}] = {prompt!r} is not in the format of data.icl_prompt "
                                  "(`x1 -> y1 , x2 -> y2 , query ->`). Build it with data.icl_prompt(examples, "
                                  "query).") from None
            if last != q:
                raise CheckFailed(f"prompts_{side}[{i}] ends with the query {last!r}, but queries[{i}] is {q!r}. Both "
                                  "prompts of a pair must ask about the same word, in the order of `queries`: "
                                  "that is what makes the pair differ only in the task.")
            if len(examples) != n_ex:
                raise CheckFailed(f"prompts_{side}[{i}] has {len(examples)} examples; n_examples was {n_ex}.")
            if any(e in set(train[other]) and e not in train_pairs for e in examples):
                raise CheckFailed(f"prompts_{side}[{i}] = {prompt!r} holds examples of {other!r}, not of {task!r}: "
                                  f"prompts_a take task_a's examples and prompts_b task_b's. Are the two swapped?")
            if any(e in held_pairs for e in examples):
                raise CheckFailed(f"prompts_{side}[{i}] = {prompt!r} uses a held-out pair of {task!r} as an example. "
                                  "Draw the examples from the training split (data.split_pairs()[0]); the held-out "
                                  "pairs are kept for testing.")
            if not all(e in train_pairs for e in examples):
                raise CheckFailed(f"prompts_{side}[{i}] = {prompt!r} has an example that is not a training pair of "
                                  f"{task!r}.")
            if any(x == q for x, _ in examples):
                raise CheckFailed(f"prompts_{side}[{i}] = {prompt!r} shows the query {q!r} among its own examples, "
                                  "with its answer: leave out every pair whose input is the query.")
            if len(set(examples)) != len(examples):
                raise CheckFailed(f"prompts_{side}[{i}] = {prompt!r} repeats an example; sample without replacement "
                                  "(rng.sample).")
    firsts = {_parse(p)[0][0] for p in out[0]}
    if len(firsts) == 1:
        raise CheckFailed("every prompt_a starts with the same example: draw new examples for each prompt, so that "
                          "the mean over prompts averages the examples away and keeps the task.")
    again = call(fn, "antonym", "french", list(queries), n_ex, 0, what="(called a second time with seed=0)")
    if tuple(again[0]) != tuple(out[0]) or tuple(again[1]) != tuple(out[1]):
        raise CheckFailed("two calls with the same seed gave different prompts: draw the examples with "
                          "random.Random(seed), not the global random module.")
    passed(f"contrast_prompts pairs {len(queries)} queries with {n_ex} training examples of each task.")


# --- match_norm -------------------------------------------------------------------------------

def check_match_norm(fn: Callable) -> None:
    """``fn(vector, reference)``: ``vector`` rescaled to the L2 norm of ``reference``."""
    g = torch.Generator().manual_seed(5)
    vector = 3.0 * torch.randn(8, generator=g)
    reference = 0.7 * torch.randn(8, generator=g)
    out = call(fn, vector.clone(), reference.clone(), what="(vector [8] of norm ~8, reference [8] of norm ~2)")
    out = expect_tensor(out, "match_norm(vector, reference)", shape=(8,), dims="d", floating=True).detach().cpu()
    want = vector * reference.norm() / vector.norm()
    if _close(out, want, atol=1e-5):
        passed(f"match_norm keeps the direction and takes the reference's norm ({reference.norm().item():.3f}).")
        return
    cos = torch.nn.functional.cosine_similarity(out, vector, dim=0).item()
    if abs(out.norm().item() - 1.0) < 1e-4 and cos > 0.9999:
        raise CheckFailed("your vector has norm 1: you unit-normalised it but did not rescale it to the reference's "
                          f"norm ({reference.norm().item():.3f}). Multiply by reference.norm().")
    if _close(out, reference, atol=1e-5):
        raise CheckFailed("you returned the reference itself; keep the direction of `vector` and only change its "
                          "length.")
    if cos > 0.9999 and abs(out.norm().item() - vector.norm().item() ** 2 / reference.norm().item()) < 1e-3:
        raise CheckFailed("the ratio of norms is upside down: multiply by reference.norm() / vector.norm().")
    if cos < 0.9999:
        raise CheckFailed(f"your vector no longer points along `vector` (cosine {cos:.3f}); only its length may "
                          "change.")
    raise CheckFailed(f"your vector has norm {out.norm().item():.4f}; the reference's L2 norm is "
                      f"{reference.norm().item():.4f}. Use torch.linalg.vector_norm (the L2 norm) of both.")
