"""Checks for section 3, "Finding the function vector" (book/chapters/function_vectors/03-function-vector.md).

``split_heads``, ``top_heads`` and ``function_vector`` get hand-made tensors whose answers are
written out by construction: a ``z`` whose every entry encodes its (row, head, dimension), a score
table of distinct values on a non-square grid, and mean outputs that are one-hot codes.

``head_outputs`` and ``patch_head`` run the shipped ``icl-tasks`` model (loaded once per module)
on a few 3-shot prompts of three tasks (random labels for ``patch_head``, as on the page),
wrapped by nnsight like the page's ``lm``. The answers come from an independent path: the plain
``transformers`` forward with PyTorch hooks. Summed over heads plus the ``c_proj`` bias, the head outputs must equal the attention output the model
returns; zeroing one head's slice of the ``c_proj`` input must lower the attention output by
exactly that head's output. For ``patch_head``, replacing a head's output by its own value must
change nothing, and replacing it by its own value plus a planted vector must give the same
probabilities as adding that vector to the attention output at the final position only.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_tensor, passed
from interpbook.datasets import icl_tasks as data

__all__ = [
    "check_split_heads",
    "check_head_outputs",
    "check_patch_head",
    "check_top_heads",
    "check_function_vector",
]


@functools.cache
def _models():
    """The shipped model, its tokenizer and an nnsight wrapper around it (loaded once)."""
    from nnsight import TransformersModel

    from interpbook.zoo import icl_tasks as zi
    from interpbook.zoo import load_model

    model = load_model("icl-tasks")
    tokenizer = zi.load_tokenizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = TransformersModel(model, tokenizer=tokenizer)
    return model, tokenizer, lm


def _prompts(random_labels: bool = False) -> tuple[list[str], list[str]]:
    """Six 3-shot prompts, two each of three tasks (equal lengths: no padding); with
    ``random_labels``, the page's corrupted context (each example answered by a word of another task)."""
    prompts, answers = [], []
    for task in ("antonym", "capital", "letter"):
        p, a = data.sample_prompts(task, 2, 3, seed=7, random_labels=random_labels)
        prompts += p
        answers += a
    return prompts, answers


def _hooked_run(model, ids, zero: tuple[int, int] | None = None, add: dict | None = None):
    """A plain forward with PyTorch hooks. Returns the final-position logits, and per layer the
    final-position input of ``c_proj`` and attention output. ``zero=(layer, head)`` zeroes that
    head's slice of the ``c_proj`` input; ``add={layer: (vec [n, d], all_positions)}`` adds
    ``vec`` to that layer's attention output at the final position (or at every position);
    ``add={layer: (head, target [n, d])}`` replaces that head's output by ``target`` at every
    position (a wrong answer's result)."""
    n_head = model.config.n_head
    zs, full, outs, handles = {}, {}, {}, []
    for layer, block in enumerate(model.transformer.h):
        d_head = block.attn.c_proj.weight.shape[0] // n_head

        def pre(mod, args, layer=layer, d_head=d_head):
            (x,) = args
            if zero is not None and zero[0] == layer:
                x = x.clone()
                x[..., zero[1] * d_head:(zero[1] + 1) * d_head] = 0
            zs[layer], full[layer] = x[:, -1].clone(), x.clone()
            return (x,)

        def post(mod, args, output, layer=layer):
            out = output[0]
            if add is not None and layer in add:
                vec, everywhere = add[layer]
                out = out.clone()
                if isinstance(vec, int):  # (head, target): replace that head at every position
                    head, target = vec, everywhere
                    W = mod.c_proj.weight
                    d_head = W.shape[0] // n_head
                    rows = slice(head * d_head, (head + 1) * d_head)
                    out = out + target[:, None] - full[layer][..., rows] @ W[rows]
                elif everywhere:
                    out = out + vec[:, None]
                else:
                    out[:, -1] = out[:, -1] + vec
            outs[layer] = out[:, -1].clone()
            return (out, *output[1:])

        handles.append(block.attn.c_proj.register_forward_pre_hook(pre))
        handles.append(block.attn.register_forward_hook(post))
    try:
        logits = model(ids).logits[:, -1]
    finally:
        for h in handles:
            h.remove()
    return logits, zs, outs


def _own_head_output(model, z_last: torch.Tensor, layer: int, head: int) -> torch.Tensor:
    """One head's output from the captured ``c_proj`` input: its slice times its rows of W_O."""
    W = model.transformer.h[layer].attn.c_proj.weight  # Conv1D: [n_head * d_head, d_model]
    d_head = W.shape[0] // model.config.n_head
    rows = slice(head * d_head, (head + 1) * d_head)
    return z_last[:, rows] @ W[rows]


# --- split_heads ------------------------------------------------------------------------------

def check_split_heads(fn: Callable) -> None:
    """``fn(z [n, n_head * d_head], n_head)`` -> ``[n, n_head, d_head]``, head h owning columns
    ``h * d_head`` to ``(h + 1) * d_head``."""
    for n, n_head, d_head in ((3, 4, 5), (2, 2, 3)):
        # entry (i, h * d_head + d) holds 100 i + 10 h + d, so every misplaced number is visible
        want = (100 * torch.arange(n)[:, None, None] + 10 * torch.arange(n_head)[None, :, None]
                + torch.arange(d_head)[None, None, :]).float()
        z = want.reshape(n, n_head * d_head)
        out = call(fn, z.clone(), n_head, what=f"(z of shape [{n}, {n_head * d_head}], n_head={n_head})")
        out = expect_tensor(out, "split_heads(z, n_head)", shape=(n, n_head, d_head), dims="n head d_head")
        out = out.detach().cpu().float()
        if torch.equal(out, z.reshape(n, d_head, n_head).transpose(1, 2)):
            raise CheckFailed("the heads are interleaved: your head 0 holds columns 0, n_head, 2 n_head, ... of z. "
                              "GPT-2 concatenates the heads: head h owns the contiguous block of columns "
                              "h * d_head to (h + 1) * d_head, so reshape to [n, n_head, d_head] directly "
                              "(not to [n, d_head, n_head] followed by a transpose).")
        if not torch.equal(out, want):
            bad = (out != want).nonzero()[0].tolist()
            raise CheckFailed(f"with n_head={n_head}, entry {bad} is {out[tuple(bad)].item():.0f}; expected "
                              f"{want[tuple(bad)].item():.0f} (= z[{bad[0]}, {bad[1]} * d_head + {bad[2]}]).")
    passed("split_heads gives each head its own contiguous block of columns")


# --- head_outputs -----------------------------------------------------------------------------

def check_head_outputs(fn: Callable) -> None:
    """``fn(lm, prompts)`` -> ``[n, layer, head, d_model]``: each head's output at the final
    position, bias excluded."""
    model, tokenizer, lm = _models()
    prompts, _ = _prompts()
    n, n_layer, n_head, d_model = len(prompts), model.config.n_layer, model.config.n_head, model.config.n_embd
    d_head = d_model // n_head
    out = call(fn, lm, prompts, what=f"({n} 3-shot prompts)")
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (n, n_layer, n_head, d_head):
        raise CheckFailed(f"your head outputs have shape {list(out.shape)}: d_head ({d_head}) where d_model "
                          f"({d_model}) was expected. That is each head's slice z of `c_proj.input`; its "
                          "contribution to the residual stream is z times its rows of `c_proj.weight` (W_O).")
    out = expect_tensor(out, "head_outputs(lm, prompts)", shape=(n, n_layer, n_head, d_model),
                        dims="n layer head d_model", floating=True).detach().cpu().float()
    ids = tokenizer(prompts, return_tensors="pt")["input_ids"].to(model.device)
    _, zs, outs = _hooked_run(model, ids)
    for layer in range(n_layer):
        bias = model.transformer.h[layer].attn.c_proj.bias.detach().cpu()
        want = outs[layer].cpu() - bias  # what the heads add together, without the bias
        total = out[:, layer].sum(1)
        if bias.abs().max() > 1e-3 and torch.allclose(total, want + n_head * bias, atol=1e-4, rtol=1e-3):
            raise CheckFailed(f"in layer {layer}, your heads summed give the attention output plus {n_head - 1} extra "
                              "copies of the c_proj bias: you added the bias to every head. The bias belongs to no "
                              "head; leave it out (heads times W_O only).")
        if not torch.allclose(total, want, atol=1e-4, rtol=1e-3):
            err = (total - want).abs().max().item()
            raise CheckFailed(f"in layer {layer}, your head outputs summed over heads, plus the c_proj bias, differ "
                              f"from the attention output the model returns at the final position (largest "
                              f"difference {err:.3g}). Use the final position (index -1) of "
                              "`attn.c_proj.input`, and mind that GPT-2's Conv1D weight is [in, out] = "
                              "[n_head * d_head, d_model]: head h owns its ROWS h * d_head:(h + 1) * d_head, "
                              "without a transpose.")
    for layer, head in ((2, 1), (0, 3)):
        _, _, ablated = _hooked_run(model, ids, zero=(layer, head))
        drop = (outs[layer] - ablated[layer]).cpu()  # what this one head added
        if not torch.allclose(out[:, layer, head], drop, atol=1e-4, rtol=1e-3):
            other = [h for h in range(n_head) if torch.allclose(out[:, layer, h], drop, atol=1e-4, rtol=1e-3)]
            where = f" (it sits at your head index {other[0]})" if other else ""
            raise CheckFailed(f"the heads sum correctly, but your output for layer {layer} head {head} is not what "
                              f"that head adds: zeroing its slice of `c_proj.input` changes the attention output "
                              f"by something else{where}. Split z into heads as [n, n_head, d_head] (contiguous "
                              "blocks) and pair head h with rows h * d_head:(h + 1) * d_head of the weight.")
    passed("head_outputs: the 16 heads sum to the attention output, and each is what zeroing it removes")


# --- patch_head -------------------------------------------------------------------------------

def check_patch_head(fn: Callable) -> None:
    """``fn(lm, prompts, answer_ids, target [n, d_model], layer, head)`` -> ``[n]``: the probability of
    each answer when that head's final-position output is replaced by ``target``."""
    model, tokenizer, lm = _models()
    prompts, answers = _prompts(random_labels=True)
    n = len(prompts)
    ids = tokenizer(prompts, return_tensors="pt")["input_ids"].to(model.device)
    answer_ids = torch.tensor(tokenizer.convert_tokens_to_ids(answers), device=model.device)
    rows = torch.arange(n, device=model.device)
    base_logits, zs, outs = _hooked_run(model, ids)
    base = base_logits.softmax(-1)[rows, answer_ids].cpu()

    def run(target, layer, head, what):
        out = call(fn, lm, prompts, answer_ids.clone(), target.clone(), layer, head, what=what)
        if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == n:
            raise CheckFailed(f"patch_head returned shape {list(out.shape)}: the whole distribution. Return only the "
                              "probability of each prompt's answer, shape [n] (index with answer_ids).")
        out = expect_tensor(out, "patch_head(...)", shape=(n,), dims="n", floating=True).detach().cpu().float()
        if (out < 0).any() or (out > 1).any():
            raise CheckFailed(f"patch_head returned values from {out.min().item():.3g} to {out.max().item():.3g}: "
                              "logits or log-probabilities? Return probabilities (softmax over the vocabulary at "
                              "the final position).")
        return out

    def probs(add):
        return _hooked_run(model, ids, add=add)[0].softmax(-1)[rows, answer_ids].cpu()

    def close(a, b):
        return torch.allclose(a, b, atol=1e-6, rtol=1e-4)

    def diagnose(got, want, layer, head, target, own, what):
        """Raise a message naming the mistake whose result ``got`` reproduces."""
        if close(got, want):
            return
        if close(got, probs({layer: (target - own, True)})) or close(got, probs({layer: (head, target)})):
            raise CheckFailed(f"{what}: your patch changed every position, not only the final one: later layers then "
                              "attend to edited earlier positions too. Index the final position: "
                              "`attn.output[0][:, -1]`.")
        if close(got, probs({layer: (target - outs[layer], False)})):
            raise CheckFailed(f"{what}: you set the whole attention output to the target, wiping the other heads (and "
                              "the bias). Replace only this head's part: add (target - the head's current output).")
        if close(got, probs({layer: (target, False)})):
            raise CheckFailed(f"{what}: you added the target on top of the head's output instead of replacing it. "
                              "Subtract the head's current output: add (target - current).")
        if not close(want, base) and close(got, base):
            raise CheckFailed(f"{what}: the answer probabilities did not change at all. Is the edit applied inside the "
                              "trace, in place (`+=` on `attn.output[0][:, -1]`), to the layer and head you were "
                              "given?")
        i = int((got - want).abs().argmax())
        raise CheckFailed(f"{what}: for prompt {i} the answer's probability should be {want[i].item():.5f}; yours is "
                          f"{got[i].item():.5f}. Check the layer and head you patch (head h is rows "
                          "h * d_head:(h + 1) * d_head of c_proj.weight), and that prompt i gets target[i].")

    # 1. replacing a head's output by its own value changes nothing
    layer, head = 2, 1
    own = _own_head_output(model, zs[layer], layer, head)
    got = run(own, layer, head, what=f"(target = the head's own output, layer {layer} head {head})")
    diagnose(got, base, layer, head, own, own,
             f"with target = layer {layer} head {head}'s own output at the final position nothing should change")

    # 2. a planted change: the head's output plus a push toward each prompt's answer (different per prompt)
    layer, head = 0, 2
    own = _own_head_output(model, zs[layer], layer, head)
    unembed = model.lm_head.weight[answer_ids]  # [n, d_model]
    push = 3 * unembed / unembed.norm(dim=-1, keepdim=True)
    target = own + push
    got = run(target, layer, head, what=f"(target = the head's own output plus a planted vector, layer {layer} "
              f"head {head})")
    diagnose(got, probs({layer: (push, False)}), layer, head, target, own,
             f"with target = layer {layer} head {head}'s output plus a vector toward each answer")
    passed("patch_head replaces one head's output at the final position and reads the answer's probability")


# --- top_heads --------------------------------------------------------------------------------

def check_top_heads(fn: Callable) -> None:
    """``fn(cie [layer, head], k)`` -> the ``k`` (layer, head) pairs of largest score, best first."""
    # distinct scores on a 3 x 5 grid (non-square, so row-major and column-major differ)
    cie = torch.tensor([[0.01, -0.20, 0.30, 0.02, 0.00],
                        [0.15, 0.03, -0.05, 0.40, 0.04],
                        [0.05, 0.25, 0.06, -0.01, 0.07]])
    want = [(1, 3), (0, 2), (2, 1), (1, 0)]
    out = call(fn, cie.clone(), 4, what="(a 3 x 5 table of scores, k=4)")
    if not isinstance(out, (list, tuple)) or len(out) != 4:
        raise CheckFailed(f"top_heads should return a list of 4 (layer, head) pairs; got {out!r}.")
    try:
        got = [(int(a), int(b)) for a, b in out]
    except (TypeError, ValueError):
        raise CheckFailed(f"top_heads should return (layer, head) pairs of ints; got {out!r}.") from None
    col_major = [((r * 5 + c) % 3, (r * 5 + c) // 3) for r, c in want]
    col_flat = [((c * 3 + r) // 5, (c * 3 + r) % 5) for r, c in want]  # cie.T flattened, unravelled as [3, 5]
    if got in (col_major, col_flat):
        raise CheckFailed("your pairs point at the wrong heads: the flat index was unravelled column-major. "
                          "For cie of shape [n_layer, n_head] flattened row by row, index i is layer "
                          "i // n_head, head i % n_head (or use torch.unravel_index).")
    if got == [(r, c) for r, c in sorted([(r, c) for r in range(3) for c in range(5)],
                                         key=lambda rc: cie[rc].item())[:4]]:
        raise CheckFailed("you returned the 4 heads with the SMALLEST scores: sort in descending order.")
    if sorted(got) == sorted(want) and got != want:
        raise CheckFailed(f"you have the right heads in the wrong order {got}: return them best first, {want}.")
    if got != want:
        raise CheckFailed(f"on the 3 x 5 table the top 4 are {want} (scores 0.40, 0.30, 0.25, 0.15); you returned "
                          f"{got}.")
    out = call(fn, cie.T.contiguous(), 1, what="(the transposed 5 x 3 table, k=1)")
    got = [(int(a), int(b)) for a, b in out]
    if got != [(3, 1)]:
        raise CheckFailed(f"on a 5 x 3 table with k=1 the answer is [(3, 1)]; you returned {got}. Use the shape "
                          "of the table you are given, not 4 x 4.")
    passed("top_heads returns the k best (layer, head) pairs, best first")


# --- function_vector --------------------------------------------------------------------------

def check_function_vector(fn: Callable) -> None:
    """``fn(mean_outputs [layer, head, d_model], heads)`` -> ``[d_model]``: the sum of the chosen
    heads' mean outputs."""
    n_layer, n_head, d_model = 4, 4, 16
    # head (l, h) outputs the one-hot vector e_{l * n_head + h}: a sum shows exactly which heads went in
    mean_outputs = torch.eye(d_model).reshape(n_layer, n_head, d_model)
    heads = [(0, 1), (2, 3), (1, 0)]
    want = torch.zeros(d_model)
    want[[1, 11, 4]] = 1.0
    out = call(fn, mean_outputs.clone(), list(heads), what="(one-hot mean outputs, 3 heads)")
    out = expect_tensor(out, "function_vector(...)", shape=(d_model,), dims="d_model", floating=True)
    out = out.detach().cpu().float()
    if torch.allclose(out, want / len(heads)):
        raise CheckFailed("you averaged the heads' outputs; the function vector is their SUM (each head adds its "
                          "output to the residual stream, so together they add the sum).")
    swapped = torch.zeros(d_model)
    for layer, head in heads:
        swapped[head * n_head + layer] += 1
    if torch.allclose(out, swapped):
        raise CheckFailed("you indexed mean_outputs[head, layer]; each pair is (layer, head), and mean_outputs is "
                          "[layer, head, d_model].")
    if not torch.allclose(out, want):
        raise CheckFailed(f"with head (l, h) outputting the one-hot vector e[4 l + h], the sum over heads {heads} "
                          f"has ones at 1, 11 and 4; yours is nonzero at {out.nonzero().flatten().tolist()}.")
    out = call(fn, mean_outputs.clone(), [(1, 2)], what="(one head)")
    out = expect_tensor(out, "function_vector(...) with one head", shape=(d_model,), dims="d_model")
    if not torch.allclose(out.detach().cpu().float(), mean_outputs[1, 2]):
        raise CheckFailed("with a single head, the function vector is that head's mean output.")
    passed("function_vector sums the chosen heads' mean outputs")
