"""Checks for section 5, "Grokking live" (book/chapters/grokking/05-grokking-live.md).

Answers are known by construction: hand-set weights whose logits are worked out in the check,
and training runs of a small model of the check's own on data whose test labels follow a
different rule from the training labels, so that evaluating on the wrong split shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = ["check_mod_add_mlp", "check_train_mlp"]


def check_mod_add_mlp(ModAddMLP: type) -> None:
    p, d_embed, d_hidden = 5, 2, 3
    model = call(ModAddMLP, p, d_embed, d_hidden)
    shapes = {"embed": (p, d_embed), "W_in": (2 * d_embed, d_hidden), "W_out": (d_hidden, p)}
    for name, shape in shapes.items():
        if not isinstance(getattr(model, name, None), torch.Tensor):
            raise CheckFailed(f"ModAddMLP({p}, {d_embed}, {d_hidden}) should keep the parameter {name}; "
                              "leave __init__ as it is given.")
        expect_tensor(getattr(model, name), f"ModAddMLP.{name}", shape)
    with torch.no_grad():
        # Number x embeds as (x, 1). Hidden unit 0 reads a's first coordinate, unit 1 minus b's
        # first coordinate, unit 2 a - b (so the ReLU matters). Logit j = hidden unit j % 3 * (j + 1).
        model.embed.copy_(torch.stack([torch.arange(p).float(), torch.ones(p)], dim=1))
        model.W_in.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, -1.0, -1.0], [0.0, 0.0, 0.0]]))
        W_out = torch.zeros(d_hidden, p)
        for j in range(p):
            W_out[j % d_hidden, j] = j + 1.0
        model.W_out.copy_(W_out)
    a = torch.tensor([3, 1, 4, 0])
    b = torch.tensor([1, 2, 2, 4])
    with torch.no_grad():
        out = call(model, a, b, what="(a = [3, 1, 4, 0], b = [1, 2, 2, 4])")
    expect_tensor(out, "ModAddMLP(...)(a, b)", (4, p), "batch, p", floating=True)
    hidden = torch.stack([a.float(), -b.float(), (a - b).float()], dim=1)
    want = torch.relu(hidden) @ W_out
    hint = "Embed a and b with the shared embedding, concatenate (a first), W_in, ReLU, W_out."
    if torch.allclose(out, hidden @ W_out, atol=1e-4):
        hint = "You left out the ReLU between W_in and W_out."
    elif torch.allclose(out, torch.relu(torch.stack([b.float(), -a.float(), (b - a).float()], dim=1)) @ W_out,
                        atol=1e-4):
        hint = "a and b are concatenated the wrong way round: a's embedding comes first."
    expect_close(out, want, "logits of ModAddMLP with hand-set weights", atol=1e-4, hint=hint)
    passed("ModAddMLP: shared embedding, concatenated, ReLU layer, unembedding")


class _Tiny(nn.Module):
    """The check's own small model (it does not depend on the learner's ModAddMLP)."""

    def __init__(self, p: int, d: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = nn.Parameter(torch.randn(p, d, generator=g))
        self.W = nn.Parameter(torch.randn(2 * d, 32, generator=g) / math.sqrt(2 * d))
        self.U = nn.Parameter(torch.randn(32, p, generator=g) / math.sqrt(32))

    def forward(self, a, b):
        return torch.relu(torch.cat([self.embed[a], self.embed[b]], -1) @ self.W) @ self.U


def _norm(model: nn.Module) -> float:
    return math.sqrt(sum(float(t.detach().pow(2).sum()) for t in model.parameters()))


def check_train_mlp(train_mlp: Callable) -> None:
    p = 7
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(0))
    train_idx, test_idx = perm[:30], perm[30:]
    labels = (a + b) % p
    labels[test_idx] = (labels[test_idx] + 3) % p  # the test problems follow another rule
    steps, log_every = 120, 40
    model = _Tiny(p)
    torch.manual_seed(0)
    curves = call(train_mlp, model, a, b, labels, train_idx, test_idx, steps, 1e-2, 0.0, log_every)
    keys = ("step", "train_loss", "test_loss", "train_acc", "test_acc")
    if not isinstance(curves, dict) or any(k not in curves for k in keys):
        raise CheckFailed(f"train_mlp should return a dict with the keys {list(keys)}; got "
                          f"{sorted(curves) if isinstance(curves, dict) else type(curves).__name__}.")
    want_steps = list(range(0, steps + 1, log_every))
    got_steps = [int(s) for s in curves["step"]]
    if got_steps != want_steps:
        hint = ""
        if got_steps == want_steps[:-1]:
            hint = f" The last entry is missing: log at step {steps} too, after the last update (range(steps + 1))."
        raise CheckFailed(f"With steps = {steps} and log_every = {log_every}, curves['step'] should be "
                          f"{want_steps}; got {got_steps}.{hint}")
    for k in keys[1:]:
        if len(curves[k]) != len(want_steps):
            raise CheckFailed(f"curves[{k!r}] has {len(curves[k])} entries; expected {len(want_steps)}, one per "
                              "logged step.")
    train_loss = [float(x) for x in curves["train_loss"]]
    if not train_loss[-1] < 0.5 * train_loss[0]:
        raise CheckFailed(f"After {steps} steps of AdamW with lr 1e-2 the training loss should have fallen by "
                          f"more than half; it went from {train_loss[0]:.3f} to {train_loss[-1]:.3f}. Do you "
                          "call opt.zero_grad(), loss.backward() and opt.step() at every step?")
    if float(curves["train_acc"][-1]) < 0.9:
        raise CheckFailed(f"The model should fit its 30 training problems (training accuracy >= 0.9 after "
                          f"{steps} steps); got {float(curves['train_acc'][-1]):.2f}.")
    if float(curves["test_acc"][-1]) > 0.5:
        raise CheckFailed(
            "In this check the test problems are labelled by a different rule from the training problems, so "
            f"test accuracy must stay low; yours ends at {float(curves['test_acc'][-1]):.2f}. Compute the test "
            "loss and accuracy on a[test_idx], b[test_idx] against labels[test_idx].")
    if abs(float(curves["train_loss"][0]) - float(curves["test_loss"][0])) < 1e-9 and \
            abs(float(curves["train_loss"][-1]) - float(curves["test_loss"][-1])) < 1e-9:
        raise CheckFailed("Your train and test losses are identical: evaluate the test problems separately.")
    # Weight decay: the same run with weight decay 1 must end with clearly smaller weights.
    no_decay = _norm(model)
    model = _Tiny(p)
    torch.manual_seed(0)
    call(train_mlp, model, a, b, labels, train_idx, test_idx, steps, 1e-2, 1.0, log_every)
    with_decay = _norm(model)
    if not with_decay < 0.9 * no_decay:
        raise CheckFailed(
            f"With weight_decay = 1.0 the weights should end clearly smaller than with 0.0 (total norm "
            f"{with_decay:.2f} vs {no_decay:.2f}). Pass weight_decay to torch.optim.AdamW (and use AdamW, "
            "whose decay acts on the weights directly).")
    passed("train_mlp: full-batch AdamW, logs at every log_every steps, both splits, weight decay")
