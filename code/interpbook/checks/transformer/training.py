"""Checks for section 3, "Training" (book/chapters/transformer/03-training.md).

Answers are known by construction: windows cut from ``torch.arange`` streams, whose every entry
says where it came from; losses of a bigram model whose next-token probabilities are set by hand
(1/2 on one favoured successor, 1/8 on each other token), so every loss is a multiple of
log 2 counted from the transitions; two AdamW steps taken by the check on an identical copy of a
tiny seeded model; and a learning-rate schedule evaluated at steps whose values are worked out
in the comments.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_evaluate",
    "check_lm_loss",
    "check_lr_at",
    "check_make_windows",
    "check_train_step",
]

LOG2 = math.log(2)


# ------------------------------------------------------------------------------------------
# make_windows


def check_make_windows(make_windows: Callable) -> None:
    for stream, n_ctx, bos, kw in (
        (torch.arange(1, 21), 6, 0, {}),  # 20 tokens, 5 per window: exactly 4 windows
        (torch.arange(1, 23), 6, 0, {}),  # 22 tokens: the same 4 windows, 21 and 22 dropped
        (torch.arange(10, 27), 4, 99, {"bos": 99}),  # 17 tokens, 3 per window: 5 windows
    ):
        n_stream = len(stream)
        shown = f"make_windows(torch.arange({int(stream[0])}, {int(stream[-1]) + 1}), n_ctx={n_ctx}" + (
            f", bos={bos})" if kw else ")")
        out = call(make_windows, stream, n_ctx, **kw)
        per = n_ctx - 1
        n_windows = n_stream // per
        want = torch.cat([torch.full((n_windows, 1), bos), stream[: n_windows * per].view(n_windows, per)], 1)
        expect_tensor(out, shown)
        if out.ndim != 2:
            raise CheckFailed(f"{shown} should be a 2-D tensor [n_windows, n_ctx]; got shape {list(out.shape)}.")
        if out.shape[1] == n_ctx + 1:
            raise CheckFailed(
                f"{shown} has windows of {out.shape[1]} tokens; each window should be n_ctx = {n_ctx} tokens in "
                f"all, BOS included: BOS followed by n_ctx - 1 = {per} tokens of the stream.")
        expect_tensor(out, shown, None, dtype=torch.long)
        if out.shape[1] == per and not (out[:, 0] == bos).all():
            raise CheckFailed(f"{shown} has windows of {per} tokens with no BOS: put the BOS token {bos} in "
                              f"front of each window's {per} stream tokens, for n_ctx = {n_ctx} in all.")
        if out.shape[1] != n_ctx:
            raise CheckFailed(f"{shown} has windows of {out.shape[1]} tokens; expected n_ctx = {n_ctx} "
                              f"(BOS and {per} stream tokens).")
        if (out[:, 0] != bos).any():
            if out[0, 0] == stream[0]:
                raise CheckFailed(
                    f"{shown}: the first window starts {out[0, :3].tolist()}, with a stream token; every window "
                    f"should start with the BOS token {bos} (it is the position the model attends to when "
                    "nothing else is relevant, and the model was trained to see it first).")
            raise CheckFailed(f"{shown}: every window should start with the BOS token {bos}; the first "
                              f"column is {out[:, 0].tolist()}. Use the bos argument.")
        if out.shape[0] > n_windows and out.shape[0] >= 2 and out[1, 1] != stream[per]:
            raise CheckFailed(
                f"{shown} has {out.shape[0]} windows and the second one starts {out[1, :3].tolist()}: the "
                f"windows overlap. Each stream token belongs to exactly one window, so window i holds "
                f"tokens i*(n_ctx-1) ... (i+1)*(n_ctx-1) - 1: expected {n_windows} windows, "
                f"{want[:2].tolist()} first.")
        if out.shape[0] > n_windows:
            raise CheckFailed(
                f"{shown} has {out.shape[0]} windows; with {n_stream} stream tokens and {per} per window there "
                f"are {n_windows} whole windows. Drop the incomplete tail (the last {n_stream - n_windows * per} "
                "tokens) instead of padding it: padding would teach the model to predict padding.")
        if out.shape[0] < n_windows:
            raise CheckFailed(
                f"{shown} has {out.shape[0]} windows; with {n_stream} stream tokens and {per} per window there "
                f"are {n_windows} whole windows ({n_stream} // {per}).")
        if not torch.equal(out.cpu(), want):
            bad = int((out.cpu() != want).any(1).nonzero()[0])
            raise CheckFailed(
                f"{shown}: window {bad} is {out[bad].tolist()}; expected {want[bad].tolist()} (BOS, then the "
                f"next {per} stream tokens in order, with no token skipped or repeated).")
    passed("make_windows: BOS + n_ctx - 1 stream tokens per window, no overlap, tail dropped")


# ------------------------------------------------------------------------------------------
# A bigram model with known next-token probabilities


class _Bigram(nn.Module):
    """Logits depend only on the current token: row ``t`` gives probability 1/2 to token
    ``(t + 1) % 5`` and 1/8 to each of the other four. The rows are offset by a constant per
    token, so the logits are *not* log-probabilities (the offset cancels in a softmax)."""

    def __init__(self, vocab: int = 5):
        super().__init__()
        probs = torch.full((vocab, vocab), 1 / 8)
        probs[torch.arange(vocab), (torch.arange(vocab) + 1) % vocab] = 1 / 2
        offset = torch.arange(vocab, dtype=torch.float)[:, None] * 0.7 + 1.5
        self.table = nn.Parameter(probs.log() + offset)
        self.calls: list[tuple[int, bool, bool]] = []  # (rows, training, grad enabled)

    def forward(self, tokens: Tensor) -> Tensor:
        self.calls.append((tokens.shape[0], self.training, torch.is_grad_enabled()))
        return self.table[tokens]


def _transitions_loss(tokens: Tensor, shift: int = 1) -> Tensor:
    """Mean -log p of the bigram model, in units of log 2: a favoured next token (t + 1 mod 5)
    costs 1 (p = 1/2), any other 3 (p = 1/8). ``shift = 1`` is the next-token loss; 0 is the
    loss of predicting each token itself, and -1 of predicting the previous one."""
    if shift == 1:
        cur, nxt = tokens[:, :-1], tokens[:, 1:]
    elif shift == -1:
        cur, nxt = tokens[:, 1:], tokens[:, :-1]
    else:
        cur, nxt = tokens, tokens
    favoured = nxt == (cur + 1) % 5
    return torch.where(favoured, 1.0, 3.0) * LOG2


# Two windows of 6 tokens. Window 0: 0->1->2->3->4->0, all five transitions favoured (loss
# log 2 each). Window 1: 2->2, 2->1, 1->0, 0->1, 1->3: one favoured, four not (3 log 2 each).
# Mean 1.8 log 2. Predicting each token itself is never favoured (3 log 2); predicting the
# previous token is favoured twice (2->1 and 1->0 read backwards), for 2.6 log 2.
_LOSS_TOKENS = torch.tensor([[0, 1, 2, 3, 4, 0], [2, 2, 1, 0, 1, 3]])
_LOSS_WANT = (5 * 1 + 1 * 1 + 4 * 3) / 10 * LOG2  # = 1.8 log 2


def check_lm_loss(lm_loss: Callable) -> None:
    model = _Bigram()
    tokens = _LOSS_TOKENS.clone()
    loss = call(lm_loss, model, tokens, what="(a bigram model with hand-set probabilities)")
    expect_tensor(loss, "lm_loss(model, tokens)", (), "a scalar", floating=True)
    got = float(loss.detach())
    if not loss.requires_grad:
        raise CheckFailed("lm_loss returned a tensor with no gradient: keep the loss in the graph (no .item(), "
                          "no torch.no_grad(), no .detach()) so that train_step can call backward() on it.")
    candidates = {
        "unshifted": (_transitions_loss(tokens, 0).mean(),
                      "You compared the logits at position i with the token at position i itself: the logits at "
                      "position i predict token i + 1, so drop the last position's logits and the first token "
                      "(logits[:, :-1] against tokens[:, 1:])."),
        "backwards": (_transitions_loss(tokens, -1).mean(),
                      "You shifted the wrong way: the logits at position i predict token i + 1, so pair "
                      "logits[:, :-1] with tokens[:, 1:], not logits[:, 1:] with tokens[:, :-1]."),
        "sum": (_transitions_loss(tokens).sum(),
                "You summed the per-token losses: take their mean, so the loss does not grow with the batch."),
    }
    raw = -model.table.detach()[tokens[:, :-1]].gather(-1, tokens[:, 1:, None]).mean()
    candidates["raw"] = (raw, "You treated the logits as log-probabilities: apply log_softmax first "
                              "(or use F.cross_entropy, which does).")
    for value, hint in candidates.values():
        if abs(got - float(value)) < 1e-4:
            raise CheckFailed(f"lm_loss on a hand-made bigram model returned {got:.4f}; expected "
                              f"{_LOSS_WANT:.4f} (= 1.8 log 2). {hint}")
    expect_close(loss.detach(), torch.tensor(_LOSS_WANT), "lm_loss on a hand-made bigram model", atol=1e-4,
                 hint="The loss is the mean over every (window, position) of -log softmax(logits)[next token], "
                      "for positions 0 .. pos-2.")
    passed("lm_loss: mean next-token cross-entropy, shifted by one")


# ------------------------------------------------------------------------------------------
# train_step


class _TinyLM(nn.Module):
    """Embedding -> linear readout, initialised from a seeded generator."""

    def __init__(self, vocab: int = 7, d: int = 4, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W_E = nn.Parameter(torch.randn(vocab, d, generator=g))
        self.W_U = nn.Parameter(torch.randn(d, vocab, generator=g) * 0.5)
        self.b_U = nn.Parameter(torch.randn(vocab, generator=g) * 0.1)

    def forward(self, tokens: Tensor) -> Tensor:
        return torch.tanh(self.W_E[tokens]) @ self.W_U + self.b_U


def _ref_loss(model: nn.Module, tokens: Tensor) -> Tensor:
    logits = model(tokens)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def _optimiser(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)


def _params(model: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _max_diff(a: list[Tensor], b: list[Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def check_train_step(train_step: Callable) -> None:
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 7, (3, 8), generator=g) for _ in range(2)]
    # The reference: two properly zeroed AdamW steps on an identical copy.
    ref = _TinyLM()
    ref_opt = _optimiser(ref)
    ref_losses, ref_grads, ref_params = [], [], []
    for tokens in batches:
        ref_opt.zero_grad()
        loss = _ref_loss(ref, tokens)
        loss.backward()
        ref_grads.append([p.grad.clone() for p in ref.parameters()])
        ref_opt.step()
        ref_losses.append(loss.item())
        ref_params.append(_params(ref))
    with torch.no_grad():
        loss_after_first = float(_ref_loss(_model_with(ref_params[0]), batches[0]))

    model = _TinyLM()
    opt = _optimiser(model)
    start = _params(model)
    stale = [torch.full_like(p, 0.3) for p in model.parameters()]
    for p, s in zip(model.parameters(), stale, strict=True):
        p.grad = s.clone()  # left over from an earlier backward(): train_step must clear it
    for i, tokens in enumerate(batches):
        what = f"(call {i + 1} of 2, a tiny seeded model and AdamW(lr=0.05, weight_decay=0.1))"
        out = call(train_step, model, opt, tokens, what=what)
        if isinstance(out, Tensor):
            raise CheckFailed("train_step should return the loss as a Python float (loss.item()); it returned a "
                              "tensor, which keeps the whole computation graph alive in a list of losses.")
        if not isinstance(out, float):
            raise CheckFailed(f"train_step should return the loss as a float; got {type(out).__name__}.")
        now = _params(model)
        if i == 0 and _max_diff(now, start) == 0:
            raise CheckFailed("After train_step the parameters are unchanged: call optimizer.step() after "
                              "loss.backward().")
        if i == 0 and abs(out - loss_after_first) < 1e-5 and abs(out - ref_losses[0]) > 1e-4:
            raise CheckFailed(
                f"train_step returned {out:.5f}, the loss *after* the update; return the loss the gradient was "
                f"computed from, before optimizer.step() ({ref_losses[0]:.5f} here). Computing the loss twice "
                "also costs a second forward pass.")
        if abs(out - ref_losses[i]) > 1e-4:
            raise CheckFailed(
                f"Call {i + 1} of train_step returned loss {out:.5f}; the mean next-token cross-entropy of the "
                f"batch before the update is {ref_losses[i]:.5f}. Use lm_loss(model, tokens) (does its check "
                "pass?) and return loss.item().")
        grads = [p.grad for p in model.parameters()]
        cleared = all(gr is None or not gr.any() for gr in grads)
        if not cleared:
            accumulated = [s + sum(rg[k] for rg in ref_grads[: i + 1]) for k, s in enumerate(stale)]
            if _max_diff(grads, accumulated) < 1e-4:
                raise CheckFailed(
                    "The gradients were not cleared: loss.backward() *adds* to .grad, so without "
                    "optimizer.zero_grad() before it, each step uses the sum of every gradient since the last "
                    "clearing (here including one left in .grad before the first call). Call "
                    "optimizer.zero_grad() first in train_step.")
        if _max_diff(now, ref_params[i]) > 1e-5:
            hint = ("The gradients are empty after train_step, so you cleared them after the step; the first "
                    "step then used a gradient left in .grad before the call. Call optimizer.zero_grad() "
                    "*before* loss.backward()." if cleared else
                    "The order is: optimizer.zero_grad(), loss = lm_loss(model, tokens), loss.backward(), "
                    "optimizer.step(), once each.")
            raise CheckFailed(
                f"After call {i + 1} of train_step the parameters differ from two properly zeroed AdamW steps by "
                f"up to {_max_diff(now, ref_params[i]):.3g}. {hint}")
    passed("train_step: zero_grad, loss, backward, step; returns the loss before the update")


def _model_with(params: list[Tensor]) -> nn.Module:
    model = _TinyLM()
    with torch.no_grad():
        for p, v in zip(model.parameters(), params, strict=True):
            p.copy_(v)
    return model


# ------------------------------------------------------------------------------------------
# evaluate


def check_evaluate(evaluate: Callable) -> None:
    # Five windows of 4 tokens: the first four follow the favoured chain (loss log 2 per token),
    # the last has no favoured transition (3 log 2 per token). Token-weighted mean:
    # (4 * 1 + 1 * 3) / 5 = 1.4 log 2. With batch_size 2 the batches are [2, 2, 1] windows, and
    # the mean of the three batch means would be (1 + 1 + 3) / 3 = 5/3 log 2.
    windows = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 0], [3, 4, 0, 1], [0, 0, 0, 0]])
    want = 1.4 * LOG2
    for start_training in (True, False):
        model = _Bigram()
        model.train(start_training)
        mode = "training" if start_training else "eval"
        out = call(evaluate, model, windows, 2, what=f"(5 windows, batch_size 2, model in {mode} mode)")
        if isinstance(out, Tensor):
            if out.ndim:
                raise CheckFailed(f"evaluate should return one number, the mean loss; got a tensor of shape "
                                  f"{list(out.shape)}.")
            out = float(out)
        if not isinstance(out, float):
            raise CheckFailed(f"evaluate should return the mean loss as a float; got {type(out).__name__}.")
        rows = [c[0] for c in model.calls]
        if sum(rows) != len(windows):
            raise CheckFailed(f"evaluate ran the model on {sum(rows)} windows in all (batches of {rows}); every one "
                              f"of the {len(windows)} windows should be seen exactly once.")
        if max(rows) > 2:
            raise CheckFailed(f"evaluate ran the model on batches of {rows} windows with batch_size 2: go through "
                              "the windows batch_size at a time, so that evaluating a large set fits in memory.")
        if any(c[2] for c in model.calls):
            raise CheckFailed("evaluate ran the model with gradients enabled: wrap the loop in torch.no_grad() "
                              "(or torch.inference_mode()), which saves the memory and time of the graph.")
        if any(c[1] for c in model.calls):
            raise CheckFailed("evaluate ran the model in training mode: call model.eval() first, which switches "
                              "off dropout and anything else that behaves differently in training.")
        if model.training != start_training:
            raise CheckFailed(
                f"The model was in {mode} mode before evaluate and in "
                f"{'training' if model.training else 'eval'} mode after it. Restore the mode it was in: note "
                "was_training = model.training first, and call model.train(was_training) at the end.")
        if abs(out - 5 / 3 * LOG2) < 1e-4:
            raise CheckFailed(
                f"evaluate returned {out:.4f}, the mean of the per-batch means; expected {want:.4f}. The last "
                "batch holds one window, not two, so it must count half as much: weight each batch's loss by its "
                "number of predicted tokens (windows x (n_ctx - 1)) and divide by the total.")
        if abs(out - want) > 1e-4:
            raise CheckFailed(f"evaluate returned {out:.4f}; expected the mean next-token loss over all tokens of "
                              f"all windows, {want:.4f} (= 1.4 log 2). Is lm_loss's check passing?")
    passed("evaluate: token-weighted mean loss, in eval mode, without gradients, mode restored")


# ------------------------------------------------------------------------------------------
# lr_at


def check_lr_at(lr_at: Callable) -> None:
    # max_lr 1, warm-up 4 steps, 12 steps in all, min_lr_frac 0.1 (min lr 0.1).
    # Warm-up: steps 0..3 -> 1/4, 2/4, 3/4, 1. Then progress (step - 4) / 8 from 0 to 1:
    # step 4 -> 1, step 8 (progress 1/2) -> 0.1 + 0.9 * 0.5 = 0.55, step 12 -> 0.1.
    steps = [0, 1, 3, 4, 6, 8, 10, 12]
    got = []
    for s in steps:
        value = call(lr_at, s, 1.0, 4, 12, 0.1, what="(max_lr=1.0, warmup=4, total=12, min_lr_frac=0.1)")
        if isinstance(value, Tensor):
            value = float(value)
        if not isinstance(value, (float, int)):
            raise CheckFailed(f"lr_at should return a float; got {type(value).__name__} at step {s}.")
        got.append(float(value))
    cos = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 4) / 8)) for s in steps]
    want = [0.25, 0.5, 1.0] + cos[3:]
    got_t, want_t = torch.tensor(got), torch.tensor(want)
    table = ", ".join(f"{s}: {g:.3f}" for s, g in zip(steps, got, strict=True))
    hint = ""
    if got[0] == 0:
        hint = ("At step 0 your learning rate is 0, a wasted step: warm up with max_lr * (step + 1) / warmup, so "
                "that step 0 already moves and step warmup - 1 reaches max_lr.")
    elif any(abs(g - w) > 1e-6 for g, w in zip(got[:3], want[:3], strict=True)):
        hint = "The warm-up should reach max_lr at step warmup - 1: max_lr * (step + 1) / warmup."
    elif abs(got[-1]) < 1e-6:
        hint = "The decay should end at min_lr = min_lr_frac * max_lr, not at 0."
    elif abs(got[3] - 1.0) > 1e-6:
        hint = ("The cosine starts at max_lr at step warmup: measure its progress from the end of the warm-up, "
                "(step - warmup) / (total - warmup), not from step 0.")
    if not torch.allclose(got_t, want_t, atol=1e-6):
        raise CheckFailed(
            f"lr_at(step, 1.0, 4, 12, 0.1) at steps {{{table}}}; expected "
            f"{{{', '.join(f'{s}: {w:.3f}' for s, w in zip(steps, want, strict=True))}}}. "
            + (hint or "Linear warm-up max_lr * (step + 1) / warmup for step < warmup, then "
                       "min_lr + (max_lr - min_lr) * (1 + cos(pi * progress)) / 2."))
    passed("lr_at: linear warm-up to max_lr, then cosine decay to min_lr")
