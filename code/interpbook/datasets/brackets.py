"""Balanced-bracket strings: generation, labels and tokenisation.

A string over the two characters ``(`` and ``)`` is *balanced* when every ``(`` is closed by a
later ``)``: reading left to right, the running count ``#( - #)`` (the *height*) never drops
below zero and ends at zero. The empty string is balanced.

The ``brackets-classifier`` model (:mod:`interpbook.zoo.brackets`) reads a string as tokens::

    [start]  c_1  c_2 ... c_n  [end]  [pad] ... [pad]        (n <= MAX_LEN = 40)

and its logits at position 0 (the ``[start]`` token) classify the whole string: index 0 is
*unbalanced*, index 1 *balanced* (so the label of a string is also the index of its correct
logit). Attention is bidirectional and ``[pad]`` positions are masked out with an attention
mask, which :func:`tokenize` returns next to the tokens.

Strings come in six *classes*, each a way of being (un)balanced that a shortcut would get
wrong. A model that only compares the counts of ``(`` and ``)`` fails ``equal_counts_dip`` and
``joined_close_open``; one that only checks the parity of the length fails ``one_flipped``.

=====================  ========================================================================
class                  how the string is made (label)
=====================  ========================================================================
``balanced``           a uniformly random balanced string of even length 0-40 (balanced)
``random``             uniform random characters, length 1-40 (labelled by :func:`is_balanced`)
``equal_counts_dip``   as many ``(`` as ``)``, but the height drops below zero somewhere
                       (unbalanced)
``one_flipped``        a balanced string with one character flipped (unbalanced)
``odd_length``         odd length 1-39: random, or a balanced string with one character
                       inserted or deleted (unbalanced)
``joined_close_open``  ``A + ")(" + B`` with ``A`` and ``B`` balanced: the counts match and the
                       height dips to -1 exactly once (unbalanced)
=====================  ========================================================================

Held-out sets are deterministic: :func:`validation_set` (seed ``VALIDATION_SEED``, used to pick
the training checkpoint) and :func:`test_set` (seed ``TEST_SEED``, used for the reported
metrics and the tests); training draws from :func:`training_batches` with ``TRAIN_SEED``.
Short strings are few (there are only 2**8 strings of length 8), so held-out strings also
occur in training; long ones almost never do. The model card reports the overlap.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

# --- vocabulary ----------------------------------------------------------------------------
START, PAD, END, OPEN, CLOSE = 0, 1, 2, 3, 4
TOKEN_NAMES = ("[start]", "[pad]", "[end]", "(", ")")
D_VOCAB = len(TOKEN_NAMES)
_CHAR_TO_TOKEN = {"(": OPEN, ")": CLOSE}
_TOKEN_TO_CHAR = {OPEN: "(", CLOSE: ")"}

MAX_LEN = 40  # characters
N_CTX = MAX_LEN + 2  # [start] + characters + [end]
CLS_POS = 0  # the position whose logits classify the string

# Labels double as the index of the correct output logit.
UNBALANCED, BALANCED = 0, 1
LABEL_NAMES = ("unbalanced", "balanced")

CLASSES = (
    "balanced",
    "random",
    "equal_counts_dip",
    "one_flipped",
    "odd_length",
    "joined_close_open",
)
CLASS_DESCRIPTIONS = {
    "balanced": "uniformly random balanced string, even length 0-40",
    "random": "uniform random characters, length 1-40 (label from the definition)",
    "equal_counts_dip": "equal numbers of ( and ), but the height dips below zero",
    "one_flipped": "a balanced string with one character flipped",
    "odd_length": "odd length: random, or balanced with one character inserted/deleted",
    "joined_close_open": 'two balanced strings joined by ")(": counts match, height dips to -1',
}
# Mixture of classes in the training stream (fractions of a batch, in expectation).
TRAIN_MIX = {
    "balanced": 0.40,
    "random": 0.10,
    "equal_counts_dip": 0.15,
    "one_flipped": 0.10,
    "odd_length": 0.10,
    "joined_close_open": 0.15,
}

TRAIN_SEED = 0
VALIDATION_SEED = 1
TEST_SEED = 2

EXPECTED_INPUT = f"a string of the characters '(' and ')' of length 0 to {MAX_LEN}"


class BracketInputError(ValueError):
    """Raised for input the brackets tokeniser cannot encode."""


# --- the definition ------------------------------------------------------------------------
def heights(s: str) -> list[int]:
    """Running ``#( - #)`` after each character of ``s``."""
    h, out = 0, []
    for c in s:
        h += 1 if c == "(" else -1
        out.append(h)
    return out


def is_balanced(s: str) -> bool:
    """The ground truth: the height never drops below zero and ends at zero."""
    check_string(s)
    h = 0
    for c in s:
        h += 1 if c == "(" else -1
        if h < 0:
            return False
    return h == 0


def label(s: str) -> int:
    """``BALANCED`` (1) or ``UNBALANCED`` (0)."""
    return BALANCED if is_balanced(s) else UNBALANCED


# --- tokenisation --------------------------------------------------------------------------
def check_string(s: object) -> str:
    """Return ``s`` if the tokeniser can encode it, else raise :class:`BracketInputError`."""
    if not isinstance(s, str):
        raise BracketInputError(f"Expected {EXPECTED_INPUT}; got a {type(s).__name__}: {s!r}.")
    if len(s) > MAX_LEN:
        raise BracketInputError(
            f"Expected {EXPECTED_INPUT}; got a string of length {len(s)} "
            f"(the model's context holds [start] + {MAX_LEN} characters + [end])."
        )
    for i, c in enumerate(s):
        if c not in _CHAR_TO_TOKEN:
            raise BracketInputError(
                f"Expected {EXPECTED_INPUT}; got {c!r} at index {i} of {s!r}."
            )
    return s


def tokenize(
    strings: str | Sequence[str], pad_to: int | None = N_CTX
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``[batch, seq]`` and attention mask ``[batch, seq]`` (1 = real token, 0 = pad).

    Each row is ``[start] chars [end] [pad]...``. ``pad_to`` fixes ``seq`` (default ``N_CTX``,
    so every batch lines up position by position); ``None`` pads to the longest string only
    (faster; the masked model gives the same logits either way). A single string gives a
    batch of one.
    """
    if isinstance(strings, str):
        strings = [strings]
    elif not isinstance(strings, (list, tuple)):
        raise BracketInputError(
            f"Expected {EXPECTED_INPUT}, or a list of them; got a {type(strings).__name__}."
        )
    strings = [check_string(s) for s in strings]
    longest = max((len(s) for s in strings), default=0) + 2
    seq = longest if pad_to is None else pad_to
    if seq < longest:
        raise BracketInputError(f"pad_to={pad_to} is shorter than the longest input ({longest} tokens).")
    tokens = torch.full((len(strings), seq), PAD, dtype=torch.long)
    mask = torch.zeros((len(strings), seq), dtype=torch.long)
    for row, s in enumerate(strings):
        n = len(s)
        tokens[row, 0] = START
        if n:
            tokens[row, 1 : n + 1] = torch.tensor([_CHAR_TO_TOKEN[c] for c in s])
        tokens[row, n + 1] = END
        mask[row, : n + 2] = 1
    return tokens, mask


def detokenize(tokens: torch.Tensor) -> list[str]:
    """Invert :func:`tokenize`: ``[batch, seq]`` (or ``[seq]``) tokens to strings."""
    if tokens.ndim == 1:
        tokens = tokens[None]
    out = []
    for row in tokens.tolist():
        if not row or row[0] != START or END not in row:
            raise BracketInputError(f"Expected tokens '[start] ( ) ... [end] [pad]...'; got {row}.")
        end = row.index(END)
        body, tail = row[1:end], row[end + 1 :]
        if any(t not in _TOKEN_TO_CHAR for t in body) or any(t != PAD for t in tail):
            raise BracketInputError(f"Expected tokens '[start] ( ) ... [end] [pad]...'; got {row}.")
        out.append("".join(_TOKEN_TO_CHAR[t] for t in body))
    return out


def token_strings(tokens: torch.Tensor) -> list[str]:
    """Readable names of a 1-D token sequence (for plot axes)."""
    return [TOKEN_NAMES[t] for t in tokens.tolist()]


# --- generators ----------------------------------------------------------------------------
def random_balanced(rng: random.Random, n_pairs: int) -> str:
    """A uniformly random balanced string with ``n_pairs`` pairs (cycle lemma).

    Shuffle ``n`` opens and ``n + 1`` closes; exactly one rotation keeps every proper prefix
    non-negative (the one starting just after the first lowest point of the walk), and that
    rotation minus its final ``)`` is balanced. Each balanced string comes from the same number
    of shuffles, so the result is uniform.
    """
    steps = [1] * n_pairs + [-1] * (n_pairs + 1)
    rng.shuffle(steps)
    h, low, k = 0, 1, 0
    for i, step in enumerate(steps, start=1):
        h += step
        if h < low:
            low, k = h, i
    rotated = steps[k:] + steps[:k]
    return "".join("(" if step == 1 else ")" for step in rotated[:-1])


def _random_chars(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("()") for _ in range(n))


def _gen_balanced(rng: random.Random) -> str:
    return random_balanced(rng, rng.randint(0, MAX_LEN // 2))


def _gen_random(rng: random.Random) -> str:
    return _random_chars(rng, rng.randint(1, MAX_LEN))


def _gen_equal_counts_dip(rng: random.Random) -> str:
    n = rng.randint(1, MAX_LEN // 2)
    while True:
        if rng.random() < 0.5:
            # A random arrangement of n opens and n closes (most dip deeply).
            chars = list("(" * n + ")" * n)
            rng.shuffle(chars)
        else:
            # A balanced string with one '(' swapped with a later ')': a shallow dip.
            chars = list(random_balanced(rng, n))
            i = rng.choice([p for p, c in enumerate(chars) if c == "("])
            j = rng.choice([p for p, c in enumerate(chars) if c == ")" and p > i])
            chars[i], chars[j] = chars[j], chars[i]
        s = "".join(chars)
        if not is_balanced(s):
            return s


def _gen_one_flipped(rng: random.Random) -> str:
    chars = list(random_balanced(rng, rng.randint(1, MAX_LEN // 2)))
    i = rng.randrange(len(chars))
    chars[i] = "(" if chars[i] == ")" else ")"
    return "".join(chars)


def _gen_odd_length(rng: random.Random) -> str:
    n = rng.randrange(1, MAX_LEN, 2)  # 1, 3, ..., 39
    kind = rng.randrange(3)
    if kind == 0:
        return _random_chars(rng, n)
    if kind == 1:  # balanced of length n - 1, one character inserted
        chars = list(random_balanced(rng, (n - 1) // 2))
        chars.insert(rng.randint(0, len(chars)), rng.choice("()"))
    else:  # balanced of length n + 1, one character deleted
        chars = list(random_balanced(rng, (n + 1) // 2))
        del chars[rng.randrange(len(chars))]
    return "".join(chars)


def _gen_joined_close_open(rng: random.Random) -> str:
    n = rng.randint(1, MAX_LEN // 2)  # total pairs, the ")(" included
    a = rng.randint(0, n - 1)
    return random_balanced(rng, a) + ")(" + random_balanced(rng, n - 1 - a)


_GENERATORS = {
    "balanced": _gen_balanced,
    "random": _gen_random,
    "equal_counts_dip": _gen_equal_counts_dip,
    "one_flipped": _gen_one_flipped,
    "odd_length": _gen_odd_length,
    "joined_close_open": _gen_joined_close_open,
}


def sample(class_name: str, rng: random.Random) -> str:
    """One string of class ``class_name`` (see :data:`CLASSES`)."""
    if class_name not in _GENERATORS:
        raise KeyError(f"Unknown class {class_name!r}; classes: {', '.join(CLASSES)}.")
    return _GENERATORS[class_name](rng)


# --- data sets -----------------------------------------------------------------------------
@dataclass
class BracketData:
    """Strings with their labels and the class each was generated from."""

    strings: list[str]
    labels: torch.Tensor  # [n] long, BALANCED or UNBALANCED
    classes: list[str]

    def __len__(self) -> int:
        return len(self.strings)

    def tokens(self, pad_to: int | None = N_CTX) -> tuple[torch.Tensor, torch.Tensor]:
        return tokenize(self.strings, pad_to=pad_to)

    def of_class(self, class_name: str) -> BracketData:
        idx = [i for i, c in enumerate(self.classes) if c == class_name]
        return BracketData(
            [self.strings[i] for i in idx], self.labels[idx], [class_name] * len(idx)
        )


def _from_strings(strings: list[str], classes: list[str]) -> BracketData:
    labels = torch.tensor([label(s) for s in strings], dtype=torch.long)
    return BracketData(strings, labels, classes)


def make_dataset(n_per_class: int, seed: int) -> BracketData:
    """``n_per_class`` strings of every class; the same ``seed`` gives the same strings."""
    strings: list[str] = []
    classes: list[str] = []
    for k, name in enumerate(CLASSES):
        rng = random.Random(seed * 1_000 + k)
        strings += [sample(name, rng) for _ in range(n_per_class)]
        classes += [name] * n_per_class
    return _from_strings(strings, classes)


def validation_set(n_per_class: int = 1000) -> BracketData:
    """The held-out set training uses to choose its checkpoint."""
    return make_dataset(n_per_class, VALIDATION_SEED)


def test_set(n_per_class: int = 1000) -> BracketData:
    """The held-out set for reported metrics (seed differs from training and validation)."""
    return make_dataset(n_per_class, TEST_SEED)


def training_batches(batch_size: int, seed: int = TRAIN_SEED) -> Iterator[BracketData]:
    """An endless, deterministic stream of training batches mixed by :data:`TRAIN_MIX`."""
    rng = random.Random(seed)
    names = list(TRAIN_MIX)
    weights = [TRAIN_MIX[n] for n in names]
    while True:
        classes = rng.choices(names, weights=weights, k=batch_size)
        yield _from_strings([sample(c, rng) for c in classes], classes)
