"""Checks for the brackets chapter, section 1: the model and the task.

Every check compares with answers known by construction: hand-made strings whose verdicts are
written down here, heights built by a plain loop over the tokens (the page asks for a cumsum),
and a fake "model" whose verdict (the counting shortcut) fixes its accuracy on a tiny data set
in advance."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed
from interpbook.datasets import brackets as data

__all__ = [
    "check_is_balanced",
    "check_heights",
    "check_balanced_from_heights",
    "check_accuracy_by_class",
]

# --- is_balanced -------------------------------------------------------------------------------

# (string, balanced?, why) -- worked out by hand.
_HAND_MADE = [
    ("", True, "the empty string has nothing unmatched"),
    ("()", True, "one pair"),
    ("()()", True, "the height returns to zero between the pairs, which is allowed"),
    ("(())", True, "a nest"),
    ("(()())", True, "a nest holding two pairs"),
    ("(" * 20 + ")" * 20, True, "a nest 20 deep"),
    ("()" * 20, True, "twenty pairs in a row"),
    ("(", False, "it ends at height 1"),
    (")", False, "the height drops to -1 at once"),
    ("((", False, "even length, but it ends at height 2"),
    ("))", False, "even length, but the height drops below zero"),
    (")(", False, "equal counts, but the height drops to -1 before it comes back"),
    ("(()", False, "it never dips, but ends at height 1"),
    ("())(()", False, "equal counts, but the height dips to -1 after three characters"),
    ("())(", False, "equal counts, but the height dips to -1"),
    ("(" * 20 + ")" * 19 + "(", False, "it ends at height 2 (the nest is one `)` short)"),
    (")" + "()" * 19 + "(", False, "equal counts, but it starts with a dip"),
]


def _reducible(s: str) -> bool:
    """A second definition of balance: deleting "()" again and again empties the string."""
    while "()" in s:
        s = s.replace("()", "")
    return s == ""


def _as_bool(value: Any, s: str) -> bool:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if type(value).__name__ in ("bool", "bool_"):
        return bool(value)
    raise CheckFailed(f"is_balanced({s!r}) returned {value!r} ({type(value).__name__}); return True or False.")


def _dips(s: str) -> bool:
    return any(h < 0 for h in data.heights(s))


def check_is_balanced(fn: Callable) -> None:
    """``fn(s: str) -> bool``: the definition, on hand-made strings and on every short string."""
    for s, expected, why in _HAND_MADE:
        got = _as_bool(call(fn, s, what=f"(the string {s!r})"), s)
        if got == expected:
            continue
        shown = repr(s) if len(s) <= 12 else f"{s!r} (length {len(s)})"
        if expected is True and not s:
            slip = "Start at height 0; with no characters the loop never runs and the answer is True."
        elif expected is True:
            slip = ("The height may touch zero in the middle (as in '()()'): only a height below zero, "
                    "h < 0, breaks the string.")
        elif _dips(s) and s.count("(") == s.count(")"):
            slip = ("Equal numbers of ( and ) are not enough: read left to right and stop as soon as the "
                    "height goes below zero.")
        elif len(s) % 2 == 0 and s.count("(") != s.count(")"):
            slip = ("An even length only says the two counts have the same parity, not that they are equal: "
                    "track the height itself.")
        elif not _dips(s):
            slip = "Never dipping is not enough: the height must also end at zero."
        else:
            slip = "Return False as soon as the running height goes below zero."
        raise CheckFailed(f"is_balanced({shown}) returned {got}; expected {expected}: {why}. {slip}")
    # An independent route: every string of up to 10 characters against "delete '()' until empty".
    for n in range(11):
        for chars in itertools.product("()", repeat=n):
            s = "".join(chars)
            expected = _reducible(s)
            got = _as_bool(call(fn, s, what=f"(the string {s!r})"), s)
            if got != expected:
                raise CheckFailed(
                    f"is_balanced({s!r}) returned {got}; expected {expected}. (Deleting '()' pairs again and "
                    f"again {'empties' if expected else 'does not empty'} it.) Track the running height: +1 for "
                    "'(', -1 for ')', False as soon as it is below zero, and at the end True only at zero.")
    passed("is_balanced agrees on hand-made strings and on all 2,047 strings of up to 10 characters")


# --- heights -----------------------------------------------------------------------------------

def _loop_heights(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Height after each position, one token at a time; 0 on padding."""
    out = torch.zeros(tokens.shape, dtype=torch.long)
    for b in range(tokens.shape[0]):
        h = 0
        for p in range(tokens.shape[1]):
            if mask[b, p] == 0:
                continue
            t = int(tokens[b, p])
            h += 1 if t == data.OPEN else -1 if t == data.CLOSE else 0
            out[b, p] = h
    return out


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float())


def check_heights(fn: Callable) -> None:
    """``fn(tokens, mask)`` -> [batch, pos]: height after each position, 0 on [start]/[end]
    steps and 0 on padding."""
    # Worked by hand: "((" is [start] ( ( [end] [pad] -> heights 0 1 2 2 0.
    hand_tokens, hand_mask = data.tokenize(["((", "())(", ")"], pad_to=7)
    by_hand = torch.tensor([[0, 1, 2, 2, 0, 0, 0], [0, 1, 0, -1, 0, 0, 0], [0, -1, -1, 0, 0, 0, 0]])
    assert torch.equal(_loop_heights(hand_tokens, hand_mask), by_hand)
    for tokens, mask, what in (
        (hand_tokens, hand_mask, "(['((', '())(', ')'] padded to 7 positions)"),
        (*data.tokenize(["", "(()", "(" * 20 + ")" * 20, ")(", "(((())"]), "(5 strings padded to 42 positions)"),
        (*data.tokenize(["()(", "(" * 7 + ")" * 5, "))"], pad_to=None), "(3 strings padded to the longest)"),
    ):
        got = call(fn, tokens.clone(), mask.clone(), what=what)
        expect_tensor(got, "heights(tokens, mask)", shape=tuple(tokens.shape), dims="batch pos")
        if got.dtype == torch.bool:
            raise CheckFailed("heights(tokens, mask) returned a bool tensor; return the heights as numbers.")
        got = got.detach().cpu()
        expected = _loop_heights(tokens, mask)
        if _same(got, expected):
            continue
        step = (tokens == data.OPEN).long() - (tokens == data.CLOSE).long()
        every_token = torch.where(tokens == data.OPEN, 1, -1)
        rows = ", ".join(data.detokenize(tokens)[i] or "''" for i in range(len(tokens)))
        if _same(got, step.cumsum(0) * mask) or _same(got, step.cumsum(0)):
            slip = ("Your heights are summed down the batch axis (dim 0), mixing different strings. The running "
                    "sum goes along the positions of each string: cumsum(dim=-1).")
        elif _same(got, every_token.cumsum(-1) * mask) or _same(got, every_token.cumsum(-1)):
            slip = ("[start] and [end] count as -1 in your heights. Only '(' (+1) and ')' (-1) move the height; "
                    "[start], [end] and [pad] add 0.")
        elif _same(got, (step.cumsum(-1) - step) * mask) or _same(got, step.cumsum(-1) - step):
            slip = ("Your heights are one position behind: the height *before* each position. Include the "
                    "position's own character: height after position p = sum of the steps at 0..p.")
        elif _same(got, step.cumsum(-1)):
            slip = ("On the padding your heights keep the final height. Padding is not part of the string: "
                    "multiply by the mask so that [pad] positions hold 0.")
        else:
            slip = ("Heights should be +1 for '(' and -1 for ')' (0 for the special tokens), summed along "
                    "the positions with cumsum(dim=-1), and 0 where mask is 0.")
        bad = (got.float() != expected.float()).nonzero()[0].tolist()
        raise CheckFailed(
            f"heights differs from a position-by-position loop on {what} (strings {rows}): at [row, pos] {bad} "
            f"you have {got[tuple(bad)].item():g}, the loop {expected[tuple(bad)].item()}. {slip}")
    passed("heights matches a loop over the tokens, padding included")


# --- balanced_from_heights ---------------------------------------------------------------------

# (string, balanced?) worked out by hand.
_VERDICTS = [
    ("", True), ("()", True), ("((", False), (")(", False), ("(()", False), ("())(()", False),
    ("(((())))", True), ("())", False), ("()(", False), ("(()())()", True), ("(" * 19 + ")" * 19, True),
    ("(" * 19 + ")" * 18, False),
]


def check_balanced_from_heights(fn: Callable) -> None:
    """``fn(h, mask)`` -> Bool[batch]: min height >= 0 and final height 0, from loop heights."""
    strings = [s for s, _ in _VERDICTS]
    expected = torch.tensor([v for _, v in _VERDICTS])
    for pad_to, what in ((data.N_CTX, "padded to 42 positions"), (None, "padded to the longest string")):
        tokens, mask = data.tokenize(strings, pad_to=pad_to)
        h = _loop_heights(tokens, mask)
        got = call(fn, h.clone(), mask.clone(), what=f"(heights of {len(strings)} hand-made strings {what})")
        expect_tensor(got, "balanced_from_heights(h, mask)", shape=(len(strings),), dims="batch",
                      dtype=torch.bool)
        got = got.detach().cpu()
        if torch.equal(got, expected):
            continue
        i = int((got != expected).nonzero()[0])
        s, heights = strings[i], data.heights(strings[i])
        if got[i] and heights and min(heights) < 0:
            slip = ("its height goes below zero (minimum " f"{min(heights)}), which your verdict ignored: "
                    "require h.min(dim=-1) >= 0 as well as a final height of 0.")
        elif got[i]:
            slip = (f"its final height is {heights[-1]}, but your verdict read 0: probably at position -1, "
                    "which for a padded string is [pad] (height 0). Read the height at each string's own last "
                    "real position, e.g. index mask.sum(-1) - 1 (the [end] token) with gather.")
        else:
            slip = ("it never dips and ends at zero. Check the final height's index (the last real position, not "
                    "beyond it) and that the minimum allows 0: h.min(dim=-1) >= 0.")
        raise CheckFailed(f"balanced_from_heights called {s!r} ({what}) {'balanced' if got[i] else 'unbalanced'}; "
                          f"it is {'balanced' if expected[i] else 'unbalanced'}: {slip}")
    passed("balanced_from_heights gives the right verdict on hand-made strings, with and without padding")


# --- accuracy_by_class -------------------------------------------------------------------------

class _CountingModel:
    """A stand-in for the classifier with the counting shortcut: it calls a string balanced when it
    has as many '(' as ')'. At position 0 its logits say so (index 1 = balanced); at every other
    position they say the opposite, so reading the wrong position is visible. It refuses a call
    without the right attention mask, and batches larger than ``max_batch``."""

    def __init__(self, max_batch: int):
        self.max_batch = max_batch
        self.cfg = SimpleNamespace(device=torch.device("cpu"), n_ctx=data.N_CTX)
        self._param = torch.zeros(1)
        self.calls = 0

    def parameters(self):
        return iter([self._param])

    def eval(self):
        return self

    def __call__(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any):
        if attention_mask is None:
            raise CheckFailed(
                "you called the model without attention_mask. The mask is part of the input: without it every "
                "position also attends to the [pad] tokens, which the model never saw in training. Pass "
                "model(tokens, attention_mask=mask) with the mask that tokenize returns.")
        if attention_mask.shape != tokens.shape or not torch.equal(attention_mask.long().cpu(),
                                                                   (tokens != data.PAD).long().cpu()):
            raise CheckFailed("the attention mask you passed does not match the tokens: it should be 1 on "
                              "[start], the characters and [end], 0 on [pad]; pass the one tokenize returns "
                              "together with these tokens.")
        if tokens.shape[0] > self.max_batch:
            raise CheckFailed(f"you ran {tokens.shape[0]} strings in one forward pass; batch_size was "
                              f"{self.max_batch}. Run the data set in slices of at most batch_size strings.")
        self.calls += 1
        says_balanced = (tokens == data.OPEN).sum(-1) == (tokens == data.CLOSE).sum(-1)
        verdict = torch.stack([~says_balanced, says_balanced], dim=-1).float() * 4 - 2  # [batch, 2]
        logits = -verdict[:, None, :].repeat(1, tokens.shape[1], 1)  # the opposite everywhere ...
        logits[:, 0] = verdict  # ... but at position 0
        return logits

    forward = __call__


def _tiny_dataset() -> tuple[data.BracketData, dict[str, float]]:
    """Hand-made strings and the counting shortcut's accuracy on them, class by class."""
    rows = [  # (string, class); the counting model is right unless counts match but the string dips
        ("", "balanced"), ("()", "balanced"), ("(())()", "balanced"),  # right, right, right
        (")(", "equal_counts_dip"), ("())(", "equal_counts_dip"),  # wrong, wrong
        ("((", "one_flipped"), ("()((", "one_flipped"), ("(()(()", "one_flipped"),  # right x3
        ("())(()", "joined_close_open"),  # wrong
        ("(((", "random"), (")()(", "random"),  # right, wrong
    ]
    strings, classes = [s for s, _ in rows], [c for _, c in rows]
    labels = torch.tensor([data.BALANCED if _reducible(s) else data.UNBALANCED for s in strings])
    expected = {"balanced": 1.0, "equal_counts_dip": 0.0, "one_flipped": 1.0, "joined_close_open": 0.0,
                "random": 0.5}
    return data.BracketData(strings, labels, classes), expected


def check_accuracy_by_class(fn: Callable) -> None:
    """``fn(model, dataset, batch_size)`` -> {class: accuracy}, with a fake counting model whose
    accuracy on a hand-made data set is known."""
    dataset, expected = _tiny_dataset()
    fake = _CountingModel(max_batch=4)
    got = call(fn, fake, dataset, 4, what="(a fake model that only compares the counts of ( and ), on 11 "
               "hand-made strings, batch_size=4)")
    if not isinstance(got, dict):
        raise CheckFailed(f"accuracy_by_class returned a {type(got).__name__}; return a dict from class name "
                          "to accuracy.")
    if set(got) != set(expected):
        raise CheckFailed(f"accuracy_by_class returned the classes {sorted(got)}; expected one entry for each "
                          f"class present in the data set, {sorted(expected)}.")
    if fake.calls < 3:
        raise CheckFailed(f"the model was called {fake.calls} time(s) for 11 strings with batch_size=4; run it "
                          "on every slice of at most batch_size strings.")
    values = torch.tensor([float(got[k]) for k in expected])
    want = torch.tensor(list(expected.values()))
    if torch.allclose(values, 1 - want):
        raise CheckFailed("every accuracy is exactly one minus the expected one: the verdict you read is not the "
                          "one at position 0. The classifier's logits for a string are logits[:, 0] "
                          "([start]); index 1 is balanced, index 0 unbalanced.")
    expect_close(values, want, "accuracy per class (in the order " + ", ".join(expected) + ")", atol=1e-6,
                 hint=("The fake model calls a string balanced when its counts of ( and ) match, so it is right "
                       "on balanced and one_flipped strings and wrong on the dips. Compare "
                       "logits[:, 0].argmax(-1) with the labels and average within each class."))
    passed("accuracy_by_class gives a counting shortcut's known accuracies, in batches, with the mask")
