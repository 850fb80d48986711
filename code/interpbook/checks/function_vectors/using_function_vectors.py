"""Checks for section 4, "Using function vectors" (book/chapters/function_vectors/04-using-function-vectors.md).

The checks run the shipped ``icl-tasks`` model, wrapped once per module by nnsight like the page
does, on prompts of :func:`interpbook.datasets.icl_tasks.sample_prompts`. Every reference is
computed by an independent route: the plain ``transformers`` forward pass, with a PyTorch forward
hook on ``model.transformer.h[layer]`` that adds the vector at the final position (or at every
position, or after another block, for the anticipated mistakes), and, after the last block, by
hand through ``ln_f`` and ``lm_head``. ``accuracy_with_vector`` and ``cross_task_table`` get
answers planted from those reference predictions, so that the right accuracies (1/2, or a known
fraction) are known by construction and differ from what each mistake would give.
``restored_fraction`` gets hand-made accuracies with a negative gain, a full restoration and a
task with no gap to restore.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_float, expect_tensor, passed
from interpbook.datasets import icl_tasks as data

__all__ = [
    "check_add_at_final",
    "check_accuracy_with_vector",
    "check_restored_fraction",
    "check_cross_task_table",
]


@lru_cache(maxsize=1)
def _setup():
    """The model, its tokenizer and an nnsight wrapper, loaded once per module."""
    import warnings

    from interpbook.zoo import icl_tasks as zi
    from interpbook.zoo import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nnsight.modeling.transformers import TransformersModel

        model = load_model("icl-tasks")
        tokenizer = zi.load_tokenizer()
        lm = TransformersModel(model, tokenizer=tokenizer)
    return model, tokenizer, lm


def _final_logits(prompts: list[str], layer: int | None = None, vector: torch.Tensor | None = None,
                  everywhere: bool = False) -> torch.Tensor:
    """Reference: the final-position logits with ``vector`` added to block ``layer``'s output by a
    plain PyTorch forward hook (at the final position, or at every position)."""
    model, tokenizer, _ = _setup()
    device = next(model.parameters()).device
    ids = tokenizer(prompts, return_tensors="pt")["input_ids"].to(device)
    handle = None
    if layer is not None:
        v = vector.to(device)

        def hook(module, inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            hidden = hidden.clone()
            if everywhere:
                hidden += v
            else:
                hidden[:, -1] += v
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        handle = model.transformer.h[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model(ids).logits[:, -1].float().cpu()
    finally:
        if handle is not None:
            handle.remove()


def _ids(words: list[str]) -> torch.Tensor:
    _, tokenizer, _ = _setup()
    return torch.tensor(tokenizer.convert_tokens_to_ids(words))


def _vector(seed: int, norm: float) -> torch.Tensor:
    model, _, _ = _setup()
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(model.config.n_embd, generator=g)
    return norm * v / v.norm()


# --- add_at_final -------------------------------------------------------------------------------

def check_add_at_final(fn: Callable) -> None:
    """``fn(lm, prompts, layer, vector)``: final-position logits [n, vocab] with ``vector`` added to
    the output of block ``layer`` at the final position only."""
    model, tokenizer, lm = _setup()
    n_layer, d, vocab = model.config.n_layer, model.config.n_embd, model.config.vocab_size
    prompts = data.sample_prompts("antonym", 6, 3)[0] + data.sample_prompts("capital", 6, 3)[0]
    n = len(prompts)
    zero = torch.zeros(d)
    out = call(fn, lm, prompts, 1, zero.clone(), what="(12 three-shot prompts, layer 1, a zero vector)")
    if isinstance(out, torch.Tensor) and out.ndim == 3 and out.shape[0] == n:
        raise CheckFailed(f"you returned logits of shape {list(out.shape)}, every position; return only the final "
                          "position's logits, [n, vocab] (index -1 of the position axis).")
    out = expect_tensor(out, "the logits", shape=(n, vocab), dims="n vocab", floating=True).detach().float().cpu()
    expect_close(out, _final_logits(prompts), "with a zero vector, the logits", atol=1e-4,
                 hint="A zero vector must change nothing: compare with the model's own forward pass.")

    v = _vector(1, 8.0)
    out = call(fn, lm, prompts, 1, v.clone(), what="(12 three-shot prompts, layer 1, a random vector of norm 8)")
    out = expect_tensor(out, "the logits", shape=(n, vocab), dims="n vocab", floating=True).detach().float().cpu()
    if torch.allclose(out, _final_logits(prompts), atol=1e-4):
        raise CheckFailed("adding a vector of norm 8 after block 1 changed nothing: the vector was not added. In the "
                          "trace, add it in place, `lm.transformer.h[layer].output[:, -1] += vector`, before saving "
                          "`lm.lm_head.output`.")
    want = _final_logits(prompts, 1, v)
    if not torch.allclose(out, want, atol=1e-3, rtol=1e-3):
        if torch.allclose(out, _final_logits(prompts, 1, v, everywhere=True), atol=1e-3, rtol=1e-3):
            raise CheckFailed("your logits are those of adding the vector at EVERY position after block 1. Add it at "
                              "the final position only (`output[:, -1] += vector`): the query's position is where "
                              "the model reads the task.")
        for other in range(n_layer):
            if other != 1 and torch.allclose(out, _final_logits(prompts, other, v), atol=1e-3, rtol=1e-3):
                raise CheckFailed(f"asked for layer 1, your logits are those of adding the vector after block {other}. "
                                  "Add it to the OUTPUT of `lm.transformer.h[layer]` (not its input, not the next "
                                  "block's).")
        expect_close(out, want, "the logits with a vector added after block 1", atol=1e-3)

    # After the last block the effect is analytic: the logits are lm_head(ln_f(resid + v)).
    last = n_layer - 1
    resid = {}
    handle = model.transformer.h[last].register_forward_hook(
        lambda m, i, o: resid.__setitem__("x", (o[0] if isinstance(o, tuple) else o)[:, -1].detach().clone()))
    try:
        _final_logits(prompts)
    finally:
        handle.remove()
    v = _vector(2, 20.0)
    device = next(model.parameters()).device
    with torch.no_grad():
        analytic = model.lm_head(model.transformer.ln_f(resid["x"] + v.to(device))).float().cpu()
    out = call(fn, lm, prompts, last, v.clone(), what=f"(12 three-shot prompts, layer {last}, the last block)")
    out = expect_tensor(out, "the logits", shape=(n, vocab), dims="n vocab", floating=True).detach().float().cpu()
    expect_close(out, analytic, f"after the last block (layer {last}), the logits", atol=1e-3,
                 hint="They should equal lm_head(ln_f(residual + vector)) at the final position.")
    passed("add_at_final adds the vector after the right block, at the final position only")


# --- accuracy_with_vector ----------------------------------------------------------------------

def check_accuracy_with_vector(fn: Callable) -> None:
    """``fn(lm, tokenizer, prompts, answers, layer, vector)``: the top-1 accuracy of ``answers``."""
    model, tokenizer, lm = _setup()
    layer = 2
    prompts, _ = data.sample_prompts("french", 20, 0)
    pred_0 = _final_logits(prompts).argmax(-1)
    for norm in (30.0, 100.0, 300.0):  # a vector that changes some predictions
        v = _vector(3, norm)
        pred_v = _final_logits(prompts, layer, v).argmax(-1)
        if (pred_v != pred_0).any():
            break
    # Put the prompts whose prediction the vector changes first, so that the planted right half
    # scores differently without the vector.
    order = sorted(range(len(prompts)), key=lambda i: int(pred_v[i] == pred_0[i]))
    prompts, pred_v, pred_0 = [prompts[i] for i in order], pred_v[order], pred_0[order]
    queries = [p.split()[0] for p in prompts]
    vocab = tokenizer.convert_ids_to_tokens(list(range(model.config.vocab_size)))
    # Plant the answers: the first half are the predictions with the vector; in the second half,
    # every other answer is the prediction without it, the rest words predicted by neither.
    answers = []
    for i in range(len(prompts)):
        if i < len(prompts) // 2:
            answers.append(vocab[int(pred_v[i])])
        elif i % 2 == 0:
            answers.append(vocab[int(pred_0[i])])
        else:
            answers.append(vocab[next(k for k in range(7, len(vocab)) if k not in (int(pred_0[i]), int(pred_v[i])))])
    ans_ids = _ids(answers)
    want = (pred_v == ans_ids).float().mean().item()  # 0.5 when the vector changes every prediction
    without = (pred_0 == ans_ids).float().mean().item()
    query_acc = (pred_v == _ids(queries)).float().mean().item()
    got = expect_float(call(fn, lm, tokenizer, prompts, answers, layer, v.clone(),
                      what=f"(20 zero-shot prompts, planted answers, layer 2, a random vector of norm {norm:g})"),
                 "the accuracy")
    if abs(got - want) < 1e-6:
        passed(f"accuracy_with_vector scores the planted answers right ({got:.2f})")
        return
    if abs(got - 100 * want) < 1e-4:
        raise CheckFailed(f"got {got}: a percentage. Return a fraction between 0 and 1.")
    if abs(got - without) < 1e-6:
        raise CheckFailed(f"got {got:.3f}, the accuracy WITHOUT the vector; expected {want}. Pass `layer` and "
                          "`vector` on to `add_at_final`.")
    if query_acc > 0 and abs(got - query_acc) < 1e-6:
        raise CheckFailed(f"got {got:.3f}: you compared the predictions with the query words (the word before "
                          f"`->`), not with `answers`; expected {want}.")
    if got == 0.0:
        raise CheckFailed(f"got 0.0; expected {want}. Two usual causes: the answers tokenized with "
                          "`tokenizer(answers)`, which prepends `<bos>` to each (use "
                          "`tokenizer.convert_tokens_to_ids(answers)`), or the predictions compared with the query "
                          "words (the word before `->`) instead of `answers`.")
    raise CheckFailed(f"got {got:.3f}; expected {want} (half of the planted answers are the top-1 predictions with "
                      "the vector added). Compare the argmax of the final-position logits with the answers' ids.")


# --- restored_fraction -------------------------------------------------------------------------

def check_restored_fraction(fn: Callable) -> None:
    """``fn(acc_fv, acc_zero, acc_icl, min_gap=0.1)``: (fv - zero) / (icl - zero), NaN where the
    gap icl - zero is below ``min_gap``; no clipping."""
    acc_fv = torch.tensor([0.5, 0.9, 0.2, 0.3, 0.6, 0.6])
    acc_zero = torch.tensor([0.0, 0.5, 0.4, 0.3, 0.1, 0.7])
    acc_icl = torch.tensor([1.0, 0.9, 0.8, 0.35, 0.6, 0.5])
    nan = float("nan")
    want = torch.tensor([0.5, 1.0, -0.5, nan, 1.0, nan])
    what = "(six hand-made tasks: a half, a full, a negative restoration, a gap of 0.05, and ICL below zero-shot)"
    out = call(fn, acc_fv.clone(), acc_zero.clone(), acc_icl.clone(), what=what)
    out = expect_tensor(out, "the restored fractions", shape=(6,), dims="task", floating=True).detach().float().cpu()
    ok = torch.isnan(out) == torch.isnan(want)
    if ok.all() and torch.allclose(out.nan_to_num(7.0), want.nan_to_num(7.0), atol=1e-5):
        out2 = call(fn, acc_fv.clone(), acc_zero.clone(), acc_icl.clone(), min_gap=0.01, what="(min_gap=0.01)")
        out2 = expect_tensor(out2, "the restored fractions", shape=(6,), floating=True).detach().float().cpu()
        if torch.isnan(out2[3]) or abs(out2[3].item()) > 1e-5:
            raise CheckFailed(f"with min_gap=0.01 the fourth task (gap 0.05, no gain) should give 0.0; got "
                              f"{out2[3].item()}. Use the `min_gap` argument, not a fixed threshold.")
        passed("restored_fraction measures the gain as a fraction of the ICL gap, NaN where there is none")
        return
    if torch.allclose(out[:3], acc_fv[:3] / acc_icl[:3], atol=1e-5):
        raise CheckFailed(f"for the first three tasks you returned {out[:3].tolist()}, acc_fv / acc_icl. Subtract "
                          "the zero-shot baseline from both: (acc_fv - acc_zero) / (acc_icl - acc_zero), the "
                          "fraction of the gap that in-context examples close.")
    if out[2].item() == 0.0:
        raise CheckFailed("the third task (zero-shot 0.4, with the vector 0.2, ICL 0.8) should give -0.5; you "
                          "returned 0. Do not clip: a negative fraction says the vector made things worse.")
    if not torch.isnan(out[3]):
        raise CheckFailed(f"the fourth task has a gap of only 0.05 between ICL and zero-shot (below min_gap=0.1); "
                          f"return NaN there (got {out[3].item():.4g}): there is nothing to restore.")
    if not torch.isnan(out[5]):
        raise CheckFailed(f"the sixth task has ICL (0.5) BELOW zero-shot (0.7): the gap is negative, below min_gap; "
                          f"return NaN there (got {out[5].item():.4g}). Compare the signed gap, not its absolute "
                          "value, with min_gap.")
    raise CheckFailed(f"got {out.tolist()}; expected {want.tolist()}.")


# --- cross_task_table --------------------------------------------------------------------------

def _table(prompt_preds: dict, answer_of: list[dict[str, str]], queries: list[list[str]],
           counted: str = "defined", use_query_task: bool = False) -> torch.Tensor:
    """Reference table from predictions ``prompt_preds[(i, j)]`` (token ids of queries[j] with fv i)."""
    n_fv, n_q = len(answer_of), len(queries)
    out = torch.full((n_fv, n_q), float("nan"))
    for i in range(n_fv):
        for j in range(n_q):
            key = answer_of[j] if use_query_task else answer_of[i]
            hits, total = 0, 0
            for x, p in zip(queries[j], prompt_preds[(i, j)].tolist()):
                if x in key:
                    total += 1
                    hits += int(p == int(_ids([key[x]])[0]))
                elif counted == "all":
                    total += 1
            if total:
                out[i, j] = hits / total
    return out


def check_cross_task_table(fn: Callable) -> None:
    """``fn(lm, tokenizer, fvs, queries, answer_of, layer)``: [fv_task, query_task] accuracy of the
    FV task's answers on zero-shot prompts of each query task's inputs (NaN where none has one)."""
    model, tokenizer, lm = _setup()
    vocab = tokenizer.convert_ids_to_tokens(list(range(model.config.vocab_size)))
    layer = 1
    _, held = data.split_pairs()
    queries = [[x for x, _ in held["capital"][:6]], [x for x, _ in held["next"][:4]]]
    fvs = torch.stack([_vector(10 + i, 25.0) for i in range(3)])
    preds = {}
    for i in range(3):
        for j in range(2):
            preds[(i, j)] = _final_logits([data.icl_prompt([], x) for x in queries[j]], layer, fvs[i]).argmax(-1)
    # Plant answers: fv task i "knows" a different share of each query list, right on a known part.
    answer_of: list[dict[str, str]] = [{}, {}, {}]
    for i in range(3):
        for j in range(2):
            for k, x in enumerate(queries[j]):
                if (i == 2 and j == 1) or (k + i) % 3 == 2:
                    continue  # no answer in task i (and fv 2's task has none for the second list)
                p = int(preds[(i, j)][k])
                answer_of[i][x] = vocab[p] if (k + j) % 2 == 0 else vocab[(p + 5) % len(vocab)]
    want = _table(preds, answer_of, queries)
    what = "(3 random vectors of norm 25 as FVs, queries: 6 countries and 4 numbers, planted answers, layer 1)"
    out = call(fn, lm, tokenizer, fvs.clone(), [list(q) for q in queries], [dict(a) for a in answer_of], layer,
               what=what)
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 3):
        raise CheckFailed("your table has shape [2, 3] = [query_task, fv_task]; return [fv_task, query_task]: "
                          "row i is the function vector of task i.")
    out = expect_tensor(out, "the table", shape=(3, 2), dims="fv_task query_task", floating=True).detach().float().cpu()
    same_nan = torch.equal(torch.isnan(out), torch.isnan(want))
    if same_nan and torch.allclose(out.nan_to_num(7.0), want.nan_to_num(7.0), atol=1e-5):
        passed("cross_task_table scores every FV against its own task's answers on every task's queries")
        return
    if torch.allclose(out.nan_to_num(7.0), _table(preds, answer_of, queries, counted="all").nan_to_num(7.0),
                      atol=1e-5):
        raise CheckFailed("you counted the queries that the FV's task has no answer for as wrong. Average only "
                          "over the queries in `answer_of[i]` (and return NaN where there are none).")
    if not same_nan:
        raise CheckFailed(f"NaN in the wrong places: expected NaN at {torch.isnan(want).nonzero().tolist()} (the FV's "
                          f"task has no answer for any of those queries), got {torch.isnan(out).nonzero().tolist()}.")
    raise CheckFailed(f"got {out.tolist()}; expected {want.tolist()}. Entry [i, j]: add fvs[i] at `layer` to the "
                      "zero-shot prompts `x ->` of queries[j], and score the top-1 prediction against answer_of[i][x].")
