"""Checks for section 1, "nnsight basics" (book/chapters/function_vectors/01-nnsight-basics.md).

Every check runs the shipped ``icl-tasks`` model, loaded once for the module and wrapped by
nnsight exactly as on the page (``TransformersModel(model, tokenizer=tokenizer)``). The prompts
are held-out in-context prompts from :func:`interpbook.datasets.icl_tasks.sample_prompts`, all
of one length within a call (so there is no padding). The expected answers come from routes that
share no code with nnsight:

- ``final_residuals``: the model's own forward with ``output_hidden_states=True`` (whose entry
  ``l + 1`` is the output of block ``l``, except the last entry, which ``transformers`` returns
  after the final layer norm: the last block is checked through ``ln_f``);
- ``ablate_mlp_output`` and ``patch_residual``: TransformerLens hooks on a copy of the
  checkpoint (``zi.as_transformer_lens``), ``blocks.{l}.hook_mlp_out`` and ``blocks.{l}.hook_resid_post``;
  plus invariants (patching a prompt into itself changes nothing; patching after the last block
  gives the source's logits);
- ``generate_words``: a greedy loop over plain ``model(ids)`` calls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_tensor, passed
from interpbook.datasets import icl_tasks as data

__all__ = [
    "check_final_residuals",
    "check_ablate_mlp_output",
    "check_patch_residual",
    "check_generate_words",
]

_STATE: dict = {}


def _setup() -> dict:
    """The model, tokenizer, nnsight wrapper and TransformerLens bridge, built once."""
    if not _STATE:
        import warnings

        from nnsight.modeling.transformers import TransformersModel

        from interpbook.zoo import icl_tasks as zi
        from interpbook.zoo import load_model

        model = load_model("icl-tasks")
        tokenizer = zi.load_tokenizer()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tl = zi.as_transformer_lens(model, tokenizer)  # wraps a copy: `model` stays as it is
        _STATE.update(model=model, tokenizer=tokenizer, lm=TransformersModel(model, tokenizer=tokenizer), tl=tl)
    return _STATE


def _ids(prompts: list[str]) -> torch.Tensor:
    s = _setup()
    device = next(s["model"].parameters()).device
    return s["tokenizer"](prompts, return_tensors="pt")["input_ids"].to(device)


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> bool:
    return a.shape == b.shape and torch.allclose(a.float().cpu(), b.float().cpu(), atol=atol, rtol=1e-4)


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float().cpu() - b.float().cpu()).abs().max().item()


# --- final_residuals --------------------------------------------------------------------------

def check_final_residuals(fn: Callable) -> None:
    """``fn(lm, prompts)``: ``[n, n_layer, d_model]``, the output of every block at the final position."""
    s = _setup()
    model, lm = s["model"], s["lm"]
    cfg = model.config
    prompts = data.sample_prompts("antonym", 3, 3)[0] + data.sample_prompts("capital", 3, 3)[0]
    out = call(fn, lm, prompts, what="(6 prompts of equal length)")
    out = expect_tensor(out, "the residual streams", shape=(len(prompts), cfg.n_layer, cfg.n_embd),
                        dims="n n_layer d_model", floating=True).detach().float().cpu()
    hs = [h.cpu() for h in model(_ids(prompts), output_hidden_states=True).hidden_states]
    # hidden_states[0] is the embedding, [l + 1] block l's output, and the last one is after ln_f
    before = torch.stack([h[:, -1] for h in hs[:-1]], 1)  # the input of every block
    inner = torch.stack([h[:, -1] for h in hs[1:-1]], 1)  # outputs of blocks 0 .. n_layer - 2
    if _close(out, before):
        raise CheckFailed("your activations are the *inputs* of the blocks (off by one layer): entry 0 is the "
                          "embedding. Read `lm.transformer.h[l].output`, the residual stream after block l.")
    if _close(out[:, :-1], torch.stack([h[:, 0] for h in hs[1:-1]], 1)):
        raise CheckFailed("your activations are those at position 0 (the <bos> token), not at the final position. "
                          "Index the position axis with -1: `lm.transformer.h[l].output[:, -1]`.")
    if not _close(out[:, :-1], inner):
        raise CheckFailed(f"the residual streams after blocks 0 to {cfg.n_layer - 2} differ from the model's own "
                          f"`output_hidden_states` by up to {_maxdiff(out[:, :-1], inner):.3g}. Save "
                          "`lm.transformer.h[l].output[:, -1]` for every l, in order, and stack them on axis 1.")
    last = hs[-1][:, -1]
    if _close(out[:, -1], last) and not _close(out[:, -1], model.transformer.ln_f(out[:, -1].to(last.device)).cpu()):
        raise CheckFailed("your last layer is after the final layer norm `ln_f` (as `hidden_states[-1]` of "
                          "transformers is). Take the output of the last block itself, before `ln_f`.")
    dev = next(model.parameters()).device
    normed = model.transformer.ln_f(out[:, -1].to(dev)).cpu()
    if not _close(normed, last):
        raise CheckFailed(f"the residual stream after the last block, put through `ln_f`, differs from the model's "
                          f"own by up to {_maxdiff(normed, last):.3g}: the last layer is wrong.")
    passed(f"final_residuals gives the output of all {cfg.n_layer} blocks at the final position, as the model's "
           "own forward does.")


# --- ablate_mlp_output ------------------------------------------------------------------------

def _tl_logits(prompts: list[str], hooks: list) -> torch.Tensor:
    return _setup()["tl"].run_with_hooks(_ids(prompts), fwd_hooks=hooks)[:, -1].cpu()


def _zero(pos):
    def hook(x, hook):
        x[:, pos] = 0
        return x
    return hook


def check_ablate_mlp_output(fn: Callable) -> None:
    """``fn(lm, prompts, layer)``: final-position logits ``[n, vocab]`` with block ``layer``'s MLP
    output zeroed at the final position only."""
    s = _setup()
    cfg = s["model"].config
    prompts = data.sample_prompts("french", 3, 4)[0] + data.sample_prompts("next", 3, 4)[0]
    clean = _tl_logits(prompts, [])
    for layer in (0, cfg.n_layer - 2):
        out = call(fn, s["lm"], prompts, layer, what=f"(6 prompts, layer={layer})")
        out = expect_tensor(out, "the logits", shape=(len(prompts), cfg.vocab_size), dims="n vocab",
                            floating=True).detach().float().cpu()
        want = _tl_logits(prompts, [(f"blocks.{layer}.hook_mlp_out", _zero(-1))])
        if _close(out, want):
            continue
        if _close(out, clean):
            raise CheckFailed(f"with layer={layer} your logits are the clean ones: nothing was zeroed. Assign in place "
                              "inside the trace, `lm.transformer.h[layer].mlp.output[:, -1] = 0`, and save the logits "
                              "after that line.")
        if _close(out, _tl_logits(prompts, [(f"blocks.{layer}.hook_mlp_out", _zero(slice(None)))])):
            raise CheckFailed(f"with layer={layer} you zeroed the MLP output at every position; zero it at the final "
                              "position only (`[:, -1]`).")
        for other in (layer - 1, layer + 1):
            if 0 <= other < cfg.n_layer and _close(out, _tl_logits(prompts, [(f"blocks.{other}.hook_mlp_out",
                                                                              _zero(-1))])):
                raise CheckFailed(f"asked for layer={layer}, you zeroed the MLP output of block {other}: index "
                                  "`lm.transformer.h[layer]` with the argument itself.")
        if _close(out, _tl_logits(prompts, [(f"blocks.{layer}.hook_attn_out", _zero(-1))])):
            raise CheckFailed(f"with layer={layer} you zeroed the attention output; this exercise zeroes the MLP's, "
                              "`lm.transformer.h[layer].mlp.output`.")
        raise CheckFailed(f"with layer={layer} your logits differ from those with the MLP output of block {layer} "
                          f"zeroed at the final position (computed with TransformerLens hooks) by up to "
                          f"{_maxdiff(out, want):.3g}. Return `lm.lm_head.output[:, -1]`, saved after the edit.")
    passed("ablate_mlp_output zeroes one block's MLP output at the final position, as the TransformerLens hook does.")


# --- patch_residual ---------------------------------------------------------------------------

def _tl_patch(source: list[str], target: list[str], save_layer: int, set_layer: int, pos=-1) -> torch.Tensor:
    tl = _setup()["tl"]
    _, cache = tl.run_with_cache(_ids(source), names_filter=f"blocks.{save_layer}.hook_resid_post")
    h = cache[f"blocks.{save_layer}.hook_resid_post"]

    def put(x, hook):
        x[:, pos] = h[:, pos]
        return x
    return _tl_logits(target, [(f"blocks.{set_layer}.hook_resid_post", put)])


def _wrong_layers(out: torch.Tensor, source: list[str], target: list[str], layer: int, n_layer: int) -> None:
    """Raise a specific message if ``out`` is the patch between two other blocks."""
    for a, b in ((layer - 1, layer), (layer + 1, layer), (layer, layer - 1), (layer, layer + 1),
                 (layer - 1, layer - 1), (layer + 1, layer + 1)):
        if 0 <= a < n_layer and 0 <= b < n_layer and _close(out, _tl_patch(source, target, a, b)):
            raise CheckFailed(f"asked for layer={layer}, you saved the output of block {a} and set it after block "
                              f"{b}. Save and set `lm.transformer.h[layer].output` of the same block.")


def check_patch_residual(fn: Callable) -> None:
    """``fn(lm, source_prompts, target_prompts, layer)``: the targets' final-position logits
    ``[n, vocab]`` with the residual stream after block ``layer`` at the final position replaced
    by each source's."""
    s = _setup()
    lm, cfg = s["lm"], s["model"].config
    source = data.sample_prompts("antonym", 4, 3, seed=1)[0]
    target = data.sample_prompts("letter", 4, 3, seed=1)[0]
    clean_t, clean_s = _tl_logits(target, []), _tl_logits(source, [])

    def run(src, tgt, layer, what):
        out = call(fn, lm, src, tgt, layer, what=what)
        return expect_tensor(out, "the patched logits", shape=(len(tgt), cfg.vocab_size), dims="n vocab",
                             floating=True).detach().float().cpu()

    same = run(target, target, 1, "(the targets patched into themselves, layer=1)")
    if not _close(same, clean_t):
        _wrong_layers(same, target, target, 1, cfg.n_layer)
        raise CheckFailed(f"patching each prompt into itself should change nothing, but your logits differ from the "
                          f"clean ones by up to {_maxdiff(same, clean_t):.3g}.")
    last = run(source, target, cfg.n_layer - 1, f"(layer={cfg.n_layer - 1}, the last block)")
    if not _close(last, clean_s):
        if _close(last, clean_t):
            raise CheckFailed("after the last block your patch changed nothing: set the saved activations in the "
                              "second trace, `lm.transformer.h[layer].output[:, -1] = saved`.")
        _wrong_layers(last, source, target, cfg.n_layer - 1, cfg.n_layer)
        raise CheckFailed(f"patching after the last block (layer={cfg.n_layer - 1}) should give the source's logits "
                          "exactly (nothing but `ln_f` and `lm_head` come after it, position by position), but "
                          f"yours differ by up to {_maxdiff(last, clean_s):.3g}.")
    layer = 1
    out = run(source, target, layer, f"(layer={layer})")
    want = _tl_patch(source, target, layer, layer)
    if _close(out, want):
        passed("patch_residual moves the final-position residual stream after one block from each source into its "
               "target: a prompt patched into itself is unchanged, and after the last block the target answers as "
               "the source.")
        return
    if _close(out, clean_s):
        raise CheckFailed(f"at layer={layer} your patched logits equal the source's: you replaced the residual stream "
                          "at every position. Patch the final position only (`[:, -1]`).")
    _wrong_layers(out, source, target, layer, cfg.n_layer)
    raise CheckFailed(f"at layer={layer} your logits differ from the patched ones (computed with TransformerLens "
                      f"hooks) by up to {_maxdiff(out, want):.3g}.")


# --- generate_words ---------------------------------------------------------------------------

def check_generate_words(fn: Callable) -> None:
    """``fn(lm, prompt, n_words)``: the ``n_words`` words greedy decoding appends to ``prompt``."""
    s = _setup()
    model, tokenizer = s["model"], s["tokenizer"]
    for prompt, n in (("hot -> cold , big -> small , fast ->", 5), (data.sample_prompts("capital", 1, 2)[0][0], 3)):
        out = call(fn, s["lm"], prompt, n, what=f"(prompt={prompt!r}, n_words={n})")
        if not isinstance(out, list) or not all(isinstance(w, str) for w in out):
            raise CheckFailed(f"return a list of strings (words), got {type(out).__name__}"
                              + (f" of {type(out[0]).__name__}" if isinstance(out, list) and out else "") + ".")
        ids = _ids([prompt])
        for _ in range(n):  # greedy, one plain forward pass per word
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
        want = tokenizer.convert_ids_to_tokens(ids[0].tolist())
        prompt_words, new = want[: len(want) - n], want[len(want) - n:]
        if out == new:
            continue
        if out == want or out == prompt_words[1:] + new:
            raise CheckFailed(f"you returned the prompt's words too ({len(out)} words for n_words={n}): generation "
                              "returns the whole sequence; keep only the last n_words.")
        if len(out) != n:
            raise CheckFailed(f"asked for n_words={n}, got {len(out)} words: {out}.")
        raise CheckFailed(f"after {prompt!r} greedy decoding gives {new}, you gave {out}. Decode greedily "
                          "(`do_sample=False`) and map the new ids to words with `tokenizer.convert_ids_to_tokens`.")
    passed("generate_words returns the greedy continuation, word for word.")
