"""Indirect object identification (IOI) prompts: vocabulary, name splits and data sets.

The IOI task (Wang et al. 2022, https://arxiv.org/abs/2211.00593): in
"When Mary and John went to the store, John gave a drink to", the next word should be the
*indirect object* (IO) "Mary", not the repeated *subject* (S) "John".

The ``ioi-toy`` model (:mod:`interpbook.zoo.ioi`) and the IOI chapter both read this module:

* a word-level vocabulary and a `tokenizers` tokenizer (:func:`tokenizer_json`), shipped as
  ``tokenizer.json`` in the checkpoint so ``model.to_tokens`` / ``model.to_string`` work;
* the names, templates and the held-out split of name *pairs* (:func:`name_pairs`);
* the dataset generator :func:`make_ioi_dataset` (prompts, IO/S token ids, ABBA/BABA flag,
  positions of IO, S1, S2 and END, and ABC-corrupted prompts for patching);
* :func:`training_examples`, the training texts (IOI mixed with generic name-rich text).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Int
from torch import Tensor

# --------------------------------------------------------------------------------------------
# Vocabulary, names, templates
# --------------------------------------------------------------------------------------------

SPECIAL_TOKENS = ("<|bos|>", "<|pad|>", "<|unk|>")  # ids 0, 1, 2
BOS_ID, PAD_ID, UNK_ID = 0, 1, 2

NAMES: tuple[str, ...] = (
    "Mary", "John", "Tom", "James", "Anna", "Sarah", "Paul", "Lisa", "Mark", "Emma",
    "David", "Laura", "Peter", "Kate", "Alex", "Rose", "Sam", "Lucy", "Ben", "Clara",
    "Dan", "Eva", "Frank", "Grace", "Henry", "Iris", "Jack", "Julia", "Kevin", "Leo",
    "Maria", "Nina", "Oscar", "Olivia", "Ryan", "Sophie", "Steve", "Tina", "Victor", "Zoe",
    "Adam", "Bella", "Carl", "Diana", "Eric", "Fiona", "George", "Helen", "Ivan", "Jane",
)

# IOI templates. {A} and {B} are the two names of the first clause, {S} the subject of the
# second clause; the answer (IO) is whichever of {A}, {B} is not {S}. Each template ends in its
# own verb phrase ("gave a drink to"); with ``varied_actions=True`` the verb phrase is drawn from
# ACTIONS instead, so the distance from the second subject mention to the end varies (2 to 7
# words) and a model cannot find the subject by its position alone.
TEMPLATES: tuple[str, ...] = (
    "When {A} and {B} went to the store, {S} gave a drink to",
    "When {A} and {B} went to the park, {S} gave a ball to",
    "After {A} and {B} went to the office, {S} handed a book to",
    "Then, {A} and {B} had a long argument. Afterwards {S} said to",
    "While {A} and {B} were working at the school, {S} passed a note to",
    "{A} and {B} had lunch at the restaurant. {S} gave a flower to",
    "Friends {A} and {B} found a bone at the garden. {S} gave it to",
    "The day {A} and {B} went to the house, {S} sent a letter to",
)
ACTIONS: tuple[str, ...] = (
    "said to",
    "gave it to",
    "gave a drink to",
    "handed a book to",
    "passed a note to",
    "sent a long letter to",
    "happily gave a flower to",
    "finally handed a cold drink to",
    "gave a ball and a book to",
)


def _template_text(t: int, action: int | None) -> str:
    """Template ``t`` with its own verb phrase (``action=None``) or with ``ACTIONS[action]``."""
    if action is None:
        return TEMPLATES[t]
    head, _, _ = TEMPLATES[t].partition("{S}")
    return head + "{S} " + ACTIONS[action]


# Generic name-rich text mixed into training by some recipes (interpbook.zoo.ioi.VARIANTS).
# "owner": which name goes with an object (a name must be found by content and copied).
OWNER_TEMPLATE = "{X} had a {o1} and {Y} had a {o2}. The {q} belonged to"
OBJECTS: tuple[str, ...] = ("drink", "ball", "book", "note", "flower", "bone", "letter", "kiss")
# "list": a list of names repeated (induction: continue the repeated sequence).
LIST_TEMPLATE = "The team was {N1}, {N2}, {N3} and {N4}. Later the team was {N1}, {N2}, {N3} and"
# "repeat": a single name is mentioned, filler follows, the name must be copied.
REPEAT_TEMPLATE = "{X} went to the {place}. Later, everyone said hello to"
PLACES: tuple[str, ...] = ("store", "park", "office", "school", "restaurant", "garden", "house")

_WORD_RE = re.compile(r"\w+|[^\w\s]")


def _words(text: str) -> list[str]:
    """Split text the way the tokenizer's pre-tokenizer does (whitespace, then punctuation)."""
    return _WORD_RE.findall(text)


def vocabulary() -> list[str]:
    """The word-level vocabulary: special tokens, then names, then every other word (sorted)."""
    other: set[str] = set()
    texts = list(TEMPLATES) + [OWNER_TEMPLATE, LIST_TEMPLATE, REPEAT_TEMPLATE]
    for t in texts:
        other.update(w for w in _words(re.sub(r"\{\w+\}", " ", t)))
    other.update(OBJECTS)
    other.update(PLACES)
    for a in ACTIONS:
        other.update(_words(a))
    other.update(["it", "."])
    other -= set(NAMES)
    return list(SPECIAL_TOKENS) + list(NAMES) + sorted(other)


VOCAB: list[str] = vocabulary()
TOKEN_ID: dict[str, int] = {w: i for i, w in enumerate(VOCAB)}
NAME_IDS: list[int] = [TOKEN_ID[n] for n in NAMES]


def tokenizer_json() -> str:
    """The `tokenizers` WordLevel tokenizer (JSON) for :data:`VOCAB`.

    Punctuation is split off words; decoding joins words with spaces and removes the space
    before punctuation, so ``model.to_string(model.to_tokens(text)[0, 1:]) == text``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(dict(TOKEN_ID), unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return tok.to_str()


def encode(text: str) -> list[int]:
    """Token ids of ``text`` with a leading BOS (same result as ``model.to_tokens(text)[0]``)."""
    return [BOS_ID] + [TOKEN_ID.get(w, UNK_ID) for w in _words(text)]


# --------------------------------------------------------------------------------------------
# Name pairs: train / held out
# --------------------------------------------------------------------------------------------

HELDOUT_FRACTION = 0.2
SPLIT_SEED = 1234


def name_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train_pairs, heldout_pairs): unordered name pairs, a fixed 20 % of them held out.

    Every name occurs in training, but a held-out pair never appears together in any training
    prompt (in either order, in any task), so held-out accuracy measures generalisation to
    new *combinations* of names.
    """
    pairs = list(itertools.combinations(NAMES, 2))
    rng = random.Random(SPLIT_SEED)
    rng.shuffle(pairs)
    n_held = int(round(HELDOUT_FRACTION * len(pairs)))
    held = sorted(pairs[:n_held])
    train = sorted(pairs[n_held:])
    return train, held


_HELDOUT_SET: set[frozenset[str]] | None = None


def _is_heldout(a: str, b: str) -> bool:
    global _HELDOUT_SET
    if _HELDOUT_SET is None:
        _HELDOUT_SET = {frozenset(p) for p in name_pairs()[1]}
    return frozenset((a, b)) in _HELDOUT_SET


def _names_ok_for_training(names: Sequence[str]) -> bool:
    return not any(_is_heldout(a, b) for a, b in itertools.combinations(names, 2))


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


@dataclass
class IOIDataset:
    """IOI prompts with everything needed to score and analyse them.

    ``tokens`` is right-padded (pad id 1) and starts with BOS; ``end`` is the position of the
    last prompt token (the word "to"), where the model predicts the IO. ``io_pos``, ``s1_pos``,
    ``s2_pos`` are positions of the IO, the first and the second subject mention. ``order`` is
    "ABBA" (IO named first) or "BABA" (S named first). ``corrupted_*`` is the ABC version of each
    prompt: the second subject mention replaced by a third name C, so no name is repeated.
    """

    prompts: list[str]
    io_names: list[str]
    s_names: list[str]
    order: list[str]
    template: list[int]
    tokens: Int[Tensor, "batch pos"]
    end: Int[Tensor, " batch"]
    io_tok: Int[Tensor, " batch"]
    s_tok: Int[Tensor, " batch"]
    io_pos: Int[Tensor, " batch"]
    s1_pos: Int[Tensor, " batch"]
    s2_pos: Int[Tensor, " batch"]
    corrupted_prompts: list[str]
    corrupted_tokens: Int[Tensor, "batch pos"]
    c_names: list[str] = field(default_factory=list)
    # Index into ACTIONS of each prompt's verb phrase, or -1 for the template's own.
    action: list[int] = field(default_factory=list)

    @property
    def layout(self) -> list[int]:
        """An id per prompt that is equal exactly when two prompts have the same token layout."""
        return [t * 100 + a for t, a in zip(self.template, self.action)]

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, mask: Bool[Tensor, " batch"] | Sequence[bool]) -> IOIDataset:
        idx = torch.as_tensor(mask).nonzero().flatten().tolist()
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        width = int(max(self.end[idx]).item()) + 1 if idx else 1
        return IOIDataset(
            prompts=pick(self.prompts), io_names=pick(self.io_names), s_names=pick(self.s_names),
            order=pick(self.order), template=pick(self.template),
            tokens=self.tokens[idx, :width], end=self.end[idx], io_tok=self.io_tok[idx],
            s_tok=self.s_tok[idx], io_pos=self.io_pos[idx], s1_pos=self.s1_pos[idx],
            s2_pos=self.s2_pos[idx], corrupted_prompts=pick(self.corrupted_prompts),
            corrupted_tokens=self.corrupted_tokens[idx, :width], c_names=pick(self.c_names),
            action=pick(self.action),
        )

    def position_labels(self) -> list[str]:
        """A label per position for a dataset whose prompts share one layout: "BOS", "A" and "B"
        for the two first-clause names (A first; which one is the IO depends on the order),
        "S2", "END", and the template's own words elsewhere ("word (i)" where a word repeats).
        Positions are named by role, never "IO", because ABBA and BABA prompts are mixed."""
        if len(set(self.layout)) != 1:
            raise ValueError(
                f"position_labels needs prompts that share one layout, got {len(set(self.layout))} layouts: "
                "use make_ioi_dataset(n, templates=[t]) without varied_actions, or ds.subset(...)")
        end = int(self.end[0])
        first, second = sorted((int(self.io_pos[0]), int(self.s1_pos[0])))
        named = {0: "BOS", first: "A", second: "B", int(self.s2_pos[0]): "S2", end: "END"}
        labels = [named.get(i, VOCAB[int(t)]) for i, t in enumerate(self.tokens[0, : end + 1])]
        return [f"{w} ({i})" if labels.count(w) > 1 else w for i, w in enumerate(labels)]

    def by_order(self, order: str) -> IOIDataset:
        return self.subset([o == order for o in self.order])

    def by_template(self, template: int) -> IOIDataset:
        return self.subset([t == template for t in self.template])


def _pad(rows: list[list[int]]) -> Int[Tensor, "batch pos"]:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows], dtype=torch.long)


def make_ioi_dataset(
    n: int,
    split: str = "heldout",
    seed: int = 0,
    orders: Sequence[str] = ("ABBA", "BABA"),
    templates: Sequence[int] | None = None,
    varied_actions: bool = False,
) -> IOIDataset:
    """``n`` IOI prompts, cycling through ``orders`` (so both orders are balanced).

    ``split="train"`` draws name pairs from the training pairs, ``"heldout"`` from the held-out
    pairs (never seen together in training). ``templates`` restricts to some template indices.
    ``varied_actions`` draws two thirds of the verb phrases from :data:`ACTIONS`.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    train_pairs, held_pairs = name_pairs()
    pairs = train_pairs if split == "train" else held_pairs
    tmpl_ids = list(templates) if templates is not None else list(range(len(TEMPLATES)))
    rng = random.Random(seed)
    prompts, ios, ss, ords, tmpls, cs, cprompts = [], [], [], [], [], [], []
    toks, ctoks, ends, io_pos, s1_pos, s2_pos, acts = [], [], [], [], [], [], []
    for i in range(n):
        order = orders[i % len(orders)]
        io, s = rng.choice(pairs)
        if rng.random() < 0.5:
            io, s = s, io
        c = rng.choice([x for x in NAMES if x not in (io, s)])
        t = tmpl_ids[rng.randrange(len(tmpl_ids))]
        # Varied: a third of prompts keep the template's own verb phrase.
        act = None
        if varied_actions and rng.random() >= 1 / 3:
            act = rng.randrange(len(ACTIONS))
        text = _template_text(t, act)
        a, b = (io, s) if order == "ABBA" else (s, io)
        prompt = text.format(A=a, B=b, S=s)
        corrupted = text.format(A=a, B=b, S=c)
        acts.append(-1 if act is None else act)
        ids = encode(prompt)
        # Positions: the first clause names A then B; the second-clause subject comes later.
        name_positions = [j for j, tok in enumerate(ids) if VOCAB[tok] in (io, s)]
        assert len(name_positions) == 3, prompt
        p_a, p_b, p_s2 = name_positions
        prompts.append(prompt)
        cprompts.append(corrupted)
        ios.append(io)
        ss.append(s)
        cs.append(c)
        ords.append(order)
        tmpls.append(t)
        toks.append(ids)
        ctoks.append(encode(corrupted))
        ends.append(len(ids) - 1)
        io_pos.append(p_a if order == "ABBA" else p_b)
        s1_pos.append(p_b if order == "ABBA" else p_a)
        s2_pos.append(p_s2)
    lt = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return IOIDataset(
        prompts=prompts, io_names=ios, s_names=ss, order=ords, template=tmpls,
        tokens=_pad(toks), end=lt(ends), io_tok=lt([TOKEN_ID[x] for x in ios]),
        s_tok=lt([TOKEN_ID[x] for x in ss]), io_pos=lt(io_pos), s1_pos=lt(s1_pos),
        s2_pos=lt(s2_pos), corrupted_prompts=cprompts, corrupted_tokens=_pad(ctoks), c_names=cs,
        action=acts,
    )


def _generic_example(kind: str, rng: random.Random) -> tuple[str, str]:
    """One generic name-rich (prompt, answer) pair for the mixing variants."""
    while True:
        if kind == "owner":
            x, y = rng.sample(NAMES, 2)
            o1, o2 = rng.sample(OBJECTS, 2)
            q, ans = (o1, x) if rng.random() < 0.5 else (o2, y)
            names, prompt = (x, y), OWNER_TEMPLATE.format(X=x, Y=y, o1=o1, o2=o2, q=q)
        elif kind == "list":
            names = tuple(rng.sample(NAMES, 4))
            prompt = LIST_TEMPLATE.format(N1=names[0], N2=names[1], N3=names[2], N4=names[3])
            ans = names[3]
        elif kind == "repeat":
            x = rng.choice(NAMES)
            names, ans = (x,), x
            prompt = REPEAT_TEMPLATE.format(X=x, place=rng.choice(PLACES))
        else:
            raise ValueError(kind)
        if _names_ok_for_training(names):
            return prompt, ans


def training_examples(n: int, mix: dict[str, float], seed: int, varied_actions: bool = False
                      ) -> tuple[Int[Tensor, "n pos"], Int[Tensor, " n"], Int[Tensor, " n"]]:
    """(tokens, end, answer) for ``n`` training texts drawn from the task mixture ``mix``.

    ``tokens`` holds each prompt *followed by its answer* (right-padded); ``end`` is the position
    of the prompt's last token, so ``tokens[i, end[i] + 1] == answer[i]``. ``mix`` maps task
    kinds ("ioi", "owner", "list", "repeat") to probabilities. IOI prompts use training name
    pairs only; generic texts never contain a held-out pair either.
    """
    rng = random.Random(seed)
    kinds, weights = zip(*sorted(mix.items()))
    draws = rng.choices(kinds, weights=weights, k=n)
    n_ioi = sum(k == "ioi" for k in draws)
    ioi = make_ioi_dataset(max(n_ioi, 1), split="train", seed=seed + 1, varied_actions=varied_actions)
    rows, answers, j = [], [], 0
    for k in draws:
        if k == "ioi":
            prompt, ans = ioi.prompts[j], ioi.io_names[j]
            j += 1
        else:
            prompt, ans = _generic_example(k, rng)
        rows.append(encode(prompt) + [TOKEN_ID[ans]])
        answers.append(TOKEN_ID[ans])
    ends = torch.tensor([len(r) - 2 for r in rows])
    return _pad(rows), ends, torch.tensor(answers)
