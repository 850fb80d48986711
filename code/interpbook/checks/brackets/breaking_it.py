"""Checks for the brackets chapter, section 4: Breaking it (``brackets.breaking_it``).

The learner measures a margin (correct logit minus wrong logit at position 0), builds two
families of strings the mechanism suggests will be hard (two tall mountains; a dip followed by
a deep nest) and searches a family for its worst member. Every check compares with answers
known by construction: hand-written strings, counts worked out on paper, and a fake model whose
logits are a simple formula of the tokens it is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed
from interpbook.datasets import brackets as data

__all__ = [
    "FakeBracketsModel",
    "check_dip_then_nest",
    "check_margin",
    "check_mountain_grid",
    "check_worst_member",
]


# --- a fake model with known logits --------------------------------------------------------

class _Cfg:
    device = torch.device("cpu")


class FakeBracketsModel(torch.nn.Module):
    """Stands in for ``brackets-classifier``: called as ``model(tokens, attention_mask=mask)``
    (or ``run_with_cache``), it returns logits ``[batch, seq, 2]`` that are a formula of the
    tokens. At position 0, with the mask, the logits of a string with ``o`` opening and ``c``
    closing brackets are ``(unbalanced, balanced) = (0.5 * c + 1, 0.6 * o + 0.25 * [first char
    is '('])``. Without a mask it "attends to the padding", as the real model would: the
    unbalanced logit gains 0.75 per ``[pad]`` token. Every other position holds different
    numbers, so reading the wrong position shows."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # gives it a device
        self.cfg = _Cfg()
        self.calls_without_mask = 0

    @staticmethod
    def expected_logits(s: str) -> tuple[float, float]:
        o, c = s.count("("), s.count(")")
        return 0.5 * c + 1.0, 0.6 * o + (0.25 if s.startswith("(") else 0.0)

    def forward(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        tokens = torch.as_tensor(tokens)
        if tokens.ndim == 1:
            tokens = tokens[None]
        tokens = tokens.to(self.anchor.device)
        o = (tokens == data.OPEN).sum(-1).float()
        c = (tokens == data.CLOSE).sum(-1).float()
        first_open = (tokens[:, 1] == data.OPEN).float() if tokens.shape[1] > 1 else torch.zeros_like(o)
        unbal, bal = 0.5 * c + 1.0, 0.6 * o + 0.25 * first_open
        if attention_mask is None:
            self.calls_without_mask += 1
            unbal = unbal + 0.75 * (tokens == data.PAD).sum(-1).float()
        logits = torch.zeros(*tokens.shape, 2, device=tokens.device)
        logits[..., 0] = 3.0  # other positions: not the classification
        logits[..., 1] = -3.0
        logits[:, 0, 0], logits[:, 0, 1] = unbal, bal
        return logits

    def run_with_cache(self, tokens, attention_mask=None, **kwargs):
        return self.forward(tokens, attention_mask=attention_mask, **kwargs), {}


def _fake_margins(strings: list[str]) -> torch.Tensor:
    """Margins of the fake model worked out string by string (correct minus wrong logit)."""
    out = []
    for s in strings:
        unbal, bal = FakeBracketsModel.expected_logits(s)
        out.append(bal - unbal if data.is_balanced(s) else unbal - bal)
    return torch.tensor(out)


# --- margin ---------------------------------------------------------------------------------

_MARGIN_STRINGS = ["", "()", ")(", "(()", "(())()", "))((", "((((", "()()()()", "(()(()))", ")"]


def check_margin(fn: Callable) -> None:
    """``fn(model, strings)`` -> Float[n]: correct-class logit minus the other, at position 0."""
    fake = FakeBracketsModel()
    got = call(fn, fake, list(_MARGIN_STRINGS), what="(a fake model and 10 hand-made strings)")
    expect_tensor(got, "margin(model, strings)", shape=(len(_MARGIN_STRINGS),), dims="n", floating=True)
    got = got.detach().float().cpu()
    if fake.calls_without_mask:
        raise CheckFailed(
            "your function called the model without `attention_mask=`: the model then attends to the "
            "[pad] tokens, which it never saw in training. Pass the mask that `data.tokenize` returns: "
            "`model(tokens, attention_mask=mask)`.")
    expected = _fake_margins(_MARGIN_STRINGS)
    truth = torch.tensor([data.is_balanced(s) for s in _MARGIN_STRINGS])
    unbal_minus_bal = torch.where(truth, -expected, expected)
    if torch.allclose(got, unbal_minus_bal, atol=1e-4):
        raise CheckFailed(
            "you returned logit(unbalanced) − logit(balanced) for every string. The margin is the "
            "*correct* logit minus the wrong one: for a balanced string that is balanced − unbalanced, "
            "so that a negative number always means a wrong answer.")
    if torch.allclose(got, -unbal_minus_bal, atol=1e-4):
        raise CheckFailed(
            "you returned logit(balanced) − logit(unbalanced) for every string. The margin is the "
            "*correct* logit minus the wrong one: for an unbalanced string that is unbalanced − balanced "
            "(take the truth from `data.is_balanced`).")
    if torch.allclose(got, -expected, atol=1e-4):
        raise CheckFailed(
            "your margins have the opposite sign: return correct − wrong, so that a negative margin "
            "means the model is wrong.")
    if torch.allclose(got, torch.zeros_like(got) + 6.0, atol=1e-4) or torch.allclose(got.abs(), torch.full_like(got, 6.0)):
        raise CheckFailed(
            "your margins are ±6 everywhere: that is what the fake model puts at every position but 0. "
            "The model classifies the string at position 0 (the [start] token): read `logits[:, 0]`.")
    expect_close(got, expected, "margins on the fake model", atol=1e-4, hint=(
        "Tokenise the strings with `data.tokenize`, run `model(tokens, attention_mask=mask)`, take "
        "the logits at position 0, and return logit[correct] − logit[wrong] with the correct class "
        "from `data.is_balanced` (index 1 = balanced, 0 = unbalanced)."))
    passed("margin reads position 0 with the mask and signs it correct − wrong")


# --- the two-mountain family ----------------------------------------------------------------

def _mountain(a: int, b: int) -> str:
    chars: list[str] = []
    for height in (a, b):
        chars += ["("] * height + [")"] * height
    return "".join(chars)


def _expected_mountains(max_len: int) -> dict[tuple[int, int], str]:
    out = {}
    for a in range(1, max_len + 1):
        for b in range(1, max_len + 1):
            if 2 * a + 2 * b <= max_len:
                out[(a, b)] = _mountain(a, b)
    return out


def _check_family(got: Any, expected: dict, name: str, max_len: int, key_names: str,
                  length_rule: str) -> None:
    if not isinstance(got, dict):
        raise CheckFailed(f"{name}({max_len}) should return a dict {{{key_names}: string}}, got a "
                          f"{type(got).__name__}.")
    too_long = [k for k, s in got.items() if isinstance(s, str) and len(s) > max_len]
    if too_long:
        k = too_long[0]
        raise CheckFailed(
            f"{name}({max_len}) returned {len(too_long)} strings longer than {max_len} characters, e.g. "
            f"{k}: {got[k]!r} ({len(got[k])} characters). The model reads at most {data.MAX_LEN}: "
            f"keep only {length_rule}.")
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    if missing and all(len(expected[k]) == max_len - max_len % 2 for k in missing):
        raise CheckFailed(
            f"{name}({max_len}) is missing {len(missing)} members, all of exactly {max_len - max_len % 2} "
            f"characters, e.g. {missing[0]}. Strings of the longest allowed length belong to the family: "
            f"{length_rule} (≤, not <).")
    if missing or extra:
        raise CheckFailed(
            f"{name}({max_len}) should have {len(expected)} members {key_names}; yours has {len(got)}"
            + (f", missing e.g. {missing[0]}" if missing else "")
            + (f", with extra keys e.g. {extra[0]}" if extra else "")
            + f". Keep exactly the {key_names} allowed: {length_rule}.")
    wrong = [k for k in expected if got[k] != expected[k]]
    if wrong:
        k = wrong[0]
        raise CheckFailed(f"{name}({max_len})[{k}] is {got[k]!r}; expected {expected[k]!r}.")


def check_mountain_grid(fn: Callable) -> None:
    """``fn(max_len)`` -> {(a, b): "(" * a + ")" * a + "(" * b + ")" * b} for a, b >= 1 and
    2a + 2b <= max_len."""
    small = {(1, 1): "()()", (1, 2): "()(())", (2, 1): "(())()"}
    rule = "the (a, b) with a, b ≥ 1 and 2a + 2b ≤ max_len"
    got = call(fn, 6, what="(max_len=6)")
    _check_family(got, small, "mountain_grid", 6, "(a, b)", rule)
    got = call(fn, 7, what="(max_len=7)")
    _check_family(got, small, "mountain_grid", 7, "(a, b)", rule)
    got = call(fn, data.MAX_LEN, what=f"(max_len={data.MAX_LEN})")
    expected = _expected_mountains(data.MAX_LEN)
    assert len(expected) == 190  # a + b <= 20 with a, b >= 1: 1 + 2 + ... + 19
    _check_family(got, expected, "mountain_grid", data.MAX_LEN, "(a, b)", rule)
    passed(f"mountain_grid({data.MAX_LEN}) has the {len(expected)} two-mountain strings")


# --- the dip-then-nest family ---------------------------------------------------------------

def _expected_dip_then_nest(max_len: int) -> dict[tuple[int, int], str]:
    out = {}
    for j in range(max_len + 1):
        for k in range(max_len + 1):
            if 2 * j + 2 + 2 * k <= max_len:
                out[(j, k)] = "()" * j + ")(" + "(" * k + ")" * k
    return out


def check_dip_then_nest(fn: Callable) -> None:
    """``fn(max_len)`` -> {(j, k): "()" * j + ")(" + "(" * k + ")" * k} for j, k >= 0 and
    2j + 2 + 2k <= max_len."""
    small = {(0, 0): ")(", (1, 0): "())(", (0, 1): ")(()"}
    rule = "the (j, k) with j, k ≥ 0 and 2j + 2 + 2k ≤ max_len"
    for max_len in (4, 5):
        got = call(fn, max_len, what=f"(max_len={max_len})")
        if isinstance(got, dict) and got and all(isinstance(s, str) and data.is_balanced(s) for s in got.values()):
            raise CheckFailed(
                f"every string dip_then_nest({max_len}) returned is balanced, e.g. {next(iter(got.values()))!r}. "
                "The family's point is the dip: the join is `)(` (close, then open), which takes the "
                "height to −1 once.")
        if isinstance(got, dict) and all(isinstance(k, tuple) and len(k) == 2 for k in got):
            if small.keys() - got.keys() == {(0, 0), (1, 0)} or (got and min(k[1] for k in got) > 0):
                raise CheckFailed(
                    f"dip_then_nest({max_len}) has no member with k = 0. k counts the nested pairs "
                    "after the dip and may be 0 (likewise j): start both ranges at 0.")
            if got and min(k[0] for k in got) > 0:
                raise CheckFailed(
                    f"dip_then_nest({max_len}) has no member with j = 0, the dip at the very start. "
                    "Start j's range at 0.")
        _check_family(got, small, "dip_then_nest", max_len, "(j, k)", rule)
    got = call(fn, data.MAX_LEN, what=f"(max_len={data.MAX_LEN})")
    expected = _expected_dip_then_nest(data.MAX_LEN)
    assert len(expected) == 210  # j + k <= 19 with j, k >= 0
    _check_family(got, expected, "dip_then_nest", data.MAX_LEN, "(j, k)", rule)
    passed(f"dip_then_nest({data.MAX_LEN}) has the {len(expected)} strings, each with one dip to −1")


# --- worst_member ---------------------------------------------------------------------------

def check_worst_member(fn: Callable) -> None:
    """``fn(model, family)`` -> (key, margin): the member with the most negative margin."""
    # Fake-model margins from its formula: a -2.85 (the worst), b +0.9, c -0.45, d +2.0,
    # e -0.35, f +0.15; _fake_margins recomputes them string by string.
    family = {"a": "((((((", "b": ")(", "c": "()()()", "d": "))", "e": "(((())))", "f": "("}
    margins = _fake_margins(list(family.values()))
    keys = list(family)
    worst = keys[int(margins.argmin())]
    best = keys[int(margins.argmax())]
    assert margins.min() < 0 and len(set(margins.tolist())) == len(margins)  # a unique, negative worst
    fake = FakeBracketsModel()
    got = call(fn, fake, dict(family), what="(a fake model and a family of 6 strings keyed 'a' .. 'f')")
    if not (isinstance(got, tuple) and len(got) == 2):
        raise CheckFailed(f"worst_member should return a tuple (key, margin); got {got!r}.")
    key, value = got
    if key == best:
        raise CheckFailed(
            f"you returned {best!r}, the member the model gets *most* right (largest margin). The worst "
            "member has the most negative margin: use argmin, not argmax.")
    if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(keys) and keys[key] == worst:
        raise CheckFailed(
            f"you returned the position {key} of the worst member in the family; return its key "
            f"({worst!r}), which is what names the string (e.g. the pair (a, b)).")
    if key != worst:
        raise CheckFailed(f"worst_member returned the key {key!r}; expected {worst!r}, whose string "
                          f"{family[worst]!r} has the most negative margin ({margins.min().item():.2f}).")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"the second item should be the worst margin as a number; got {value!r}.") from None
    if abs(value - margins.min().item()) > 1e-4:
        raise CheckFailed(f"the worst margin is {margins.min().item():.4f}; you returned {value:.4f}.")
    passed("worst_member finds the most negative margin and names its key")
