"""``ioi-toy``: a small book-trained model for indirect object identification (IOI).

The IOI task (Wang et al. 2022, https://arxiv.org/abs/2211.00593): in
"When Mary and John went to the store, John gave a drink to", the next word should be the
*indirect object* (IO) "Mary", not the repeated *subject* (S) "John".

This module holds everything the IOI chapter and the model card reuse:

* a word-level vocabulary and a `tokenizers` tokenizer (:func:`tokenizer_json`), shipped as
  ``tokenizer.json`` in the checkpoint so ``model.to_tokens`` / ``model.to_string`` work;
* the names, templates and the held-out split of name *pairs* (:func:`name_pairs`);
* the dataset generator :func:`make_ioi_dataset` (prompts, IO/S token ids, ABBA/BABA flag,
  positions of IO, S1, S2 and END, and ABC-corrupted prompts for patching);
* small analysis helpers (:func:`logit_diff`, :func:`head_summary`) used by the model card,
  the tests and the training run;
* the registry entry ``ioi-toy`` (default profile: the shipped checkpoint; full profile: GPT-2
  small) and :func:`train`, which regenerates the checkpoint deterministically.

:func:`compare_variants` re-runs the training-variant study that chose the shipped recipe.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from interpbook.zoo.registry import ModelSpec, register

MODEL_NAME = "ioi-toy"

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


# Generic name-rich text mixed into training by some variants (see VARIANTS).
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
    tokens: torch.Tensor
    end: torch.Tensor
    io_tok: torch.Tensor
    s_tok: torch.Tensor
    io_pos: torch.Tensor
    s1_pos: torch.Tensor
    s2_pos: torch.Tensor
    corrupted_prompts: list[str]
    corrupted_tokens: torch.Tensor
    c_names: list[str] = field(default_factory=list)
    # Index into ACTIONS of each prompt's verb phrase, or -1 for the template's own.
    action: list[int] = field(default_factory=list)

    @property
    def layout(self) -> list[int]:
        """An id per prompt that is equal exactly when two prompts have the same token layout."""
        return [t * 100 + a for t, a in zip(self.template, self.action)]

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, mask: torch.Tensor | Sequence[bool]) -> IOIDataset:
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

    def by_order(self, order: str) -> IOIDataset:
        return self.subset([o == order for o in self.order])

    def by_template(self, template: int) -> IOIDataset:
        return self.subset([t == template for t in self.template])


def _pad(rows: list[list[int]]) -> torch.Tensor:
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
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


# --------------------------------------------------------------------------------------------
# Scoring and analysis
# --------------------------------------------------------------------------------------------


def final_logits(model, tokens: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Logits at each prompt's END position, shape [batch, d_vocab]."""
    logits = model(tokens.to(model.cfg.device))
    return logits[torch.arange(len(end)), end.to(logits.device)]


@torch.no_grad()
def logit_diff(model, ds: IOIDataset, corrupted: bool = False) -> torch.Tensor:
    """Per-prompt logit(IO) - logit(S) at END (on the ABC prompts if ``corrupted``)."""
    toks = ds.corrupted_tokens if corrupted else ds.tokens
    lg = final_logits(model, toks, ds.end).float().cpu()
    idx = torch.arange(len(ds))
    return lg[idx, ds.io_tok] - lg[idx, ds.s_tok]


@torch.no_grad()
def accuracy(model, ds: IOIDataset) -> float:
    """Fraction of prompts where IO is the top prediction over the whole vocabulary."""
    lg = final_logits(model, ds.tokens, ds.end).float().cpu()
    return float((lg.argmax(-1) == ds.io_tok).float().mean())


def _head_cache(model, ds: IOIDataset):
    names = lambda n: n.endswith("hook_pattern") or n.endswith("hook_z")  # noqa: E731
    _, cache = model.run_with_cache(ds.tokens.to(model.cfg.device), names_filter=names)
    return cache


@torch.no_grad()
def head_summary(model, ds: IOIDataset, ablation: bool = True) -> dict[str, torch.Tensor]:
    """Per-head statistics on ``ds``, each a [n_layers, n_heads] tensor.

    * ``end_to_io`` / ``end_to_s1`` / ``end_to_s2``: mean attention from END to IO, S1, S2;
    * ``s2_to_s1``: mean attention from S2 to S1 (duplicate-token behaviour);
    * ``s2_to_s1_next``: attention from S2 to the token after S1 (induction behaviour);
    * ``dla``: direct logit attribution of the head's END output to logit(IO) - logit(S)
      (exact: the model has no final LayerNorm);
    * ``ablation_drop``: fraction of the mean logit difference lost when the head's output
      (``hook_z``) is replaced by its mean over prompts of the same layout (one forward pass
      per head; skipped, left at zero, when ``ablation`` is False).
    """
    L, H = model.cfg.n_layers, model.cfg.n_heads
    cache = _head_cache(model, ds)
    b = torch.arange(len(ds))
    out: dict[str, torch.Tensor] = {k: torch.zeros(L, H) for k in (
        "end_to_io", "end_to_s1", "end_to_s2", "s2_to_s1", "s2_to_s1_next", "dla", "ablation_drop")}
    direction = (model.W_U[:, ds.io_tok] - model.W_U[:, ds.s_tok]).T.float().cpu()  # [batch, d_model]
    for layer in range(L):
        pat = cache[f"blocks.{layer}.attn.hook_pattern"].float().cpu()  # [batch, head, q, k]
        z = cache[f"blocks.{layer}.attn.hook_z"].float().cpu()  # [batch, pos, head, d_head]
        out["end_to_io"][layer] = pat[b, :, ds.end, ds.io_pos].mean(0)
        out["end_to_s1"][layer] = pat[b, :, ds.end, ds.s1_pos].mean(0)
        out["end_to_s2"][layer] = pat[b, :, ds.end, ds.s2_pos].mean(0)
        out["s2_to_s1"][layer] = pat[b, :, ds.s2_pos, ds.s1_pos].mean(0)
        out["s2_to_s1_next"][layer] = pat[b, :, ds.s2_pos, ds.s1_pos + 1].mean(0)
        w_o = model.W_O[layer].float().cpu()  # [head, d_head, d_model]
        head_out = torch.einsum("bhd,hdm->bhm", z[b, ds.end], w_o)
        out["dla"][layer] = torch.einsum("bhm,bm->bh", head_out, direction).mean(0)
    if not ablation:
        return out
    base = logit_diff(model, ds).mean()
    for layer in range(L):
        for head in range(H):
            ld = ablated_logit_diff(model, ds, [(layer, head)]).mean()
            out["ablation_drop"][layer, head] = float((base - ld) / base)
    return out


def _mean_by_template(z: torch.Tensor, templates: Sequence[int]) -> torch.Tensor:
    """Replace each prompt's activation by the mean over prompts of the same template."""
    t = torch.tensor(templates)
    out = z.clone()
    for tid in t.unique():
        m = t == tid
        out[m] = z[m].mean(0, keepdim=True)
    return out


def _mean_ablation_hooks(ds: IOIDataset, heads: Sequence[tuple[int, int]]) -> list[tuple[str, Any]]:
    """Forward hooks on ``hook_z`` that replace each head in ``heads`` by its mean over prompts
    of the same template."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)

    def make_hook(hs):
        def hook(z, hook):
            z = z.clone()
            for h in hs:
                z[:, :, h] = _mean_by_template(z[:, :, h], ds.layout)
            return z
        return hook

    return [(f"blocks.{layer}.attn.hook_z", make_hook(hs)) for layer, hs in by_layer.items()]


@torch.no_grad()
def ablated_logit_diff(model, ds: IOIDataset, heads: Sequence[tuple[int, int]],
                       return_cache_of: Sequence[str] = ()) -> torch.Tensor:
    """Logit difference per prompt with the heads ``(layer, head)`` mean-ablated (per template)."""
    hooks = _mean_ablation_hooks(ds, heads)
    logits = model.run_with_hooks(ds.tokens.to(model.cfg.device), fwd_hooks=hooks)
    lg = logits[torch.arange(len(ds)), ds.end.to(logits.device)].float().cpu()
    idx = torch.arange(len(ds))
    return lg[idx, ds.io_tok] - lg[idx, ds.s_tok]


@torch.no_grad()
def attention_under_ablation(model, ds: IOIDataset, heads: Sequence[tuple[int, int]],
                             target: tuple[int, int]) -> dict[str, float]:
    """Mean attention of head ``target`` from END to IO / S1 / S2 while ``heads`` are
    mean-ablated: shows whether the ablated heads steer ``target``'s attention."""
    store: dict[str, torch.Tensor] = {}

    def grab(p, hook):
        store["p"] = p.detach().float().cpu()

    hooks = _mean_ablation_hooks(ds, heads)
    hooks.append((f"blocks.{target[0]}.attn.hook_pattern", grab))
    model.run_with_hooks(ds.tokens.to(model.cfg.device), fwd_hooks=hooks)
    p = store["p"][:, target[1]]
    b = torch.arange(len(ds))
    return {
        "io": float(p[b, ds.end, ds.io_pos].mean()),
        "s1": float(p[b, ds.end, ds.s1_pos].mean()),
        "s2": float(p[b, ds.end, ds.s2_pos].mean()),
    }


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

BASE_CONFIG: dict[str, Any] = dict(
    n_layers=3, d_model=64, n_heads=4, d_head=16, d_mlp=256, d_vocab=len(VOCAB), n_ctx=32,
    attn_only=True, normalization_type=None, act_fn="gelu", positional_embedding_type="standard",
    seed=0,
)

# The training variants compared in the model card. "mix" is the task mixture; "config" the
# overrides of BASE_CONFIG.
VARIANTS: dict[str, dict[str, Any]] = {
    "A_attn3_ioi_answer": dict(
        config={}, mix={"ioi": 1.0}, loss="answer", steps=1500, batch=128,
        about="3 attention-only layers x 4 heads, IOI only, loss on the answer token only"),
    "B_attn3_ioi_lm": dict(
        config={}, mix={"ioi": 1.0}, loss="lm", steps=800, batch=64,
        about="3 attention-only layers x 4 heads, IOI only, next-token loss on every position"),
    "C_attn4x8_ioi_lm": dict(
        config=dict(n_layers=4, n_heads=8, d_head=8), mix={"ioi": 1.0}, loss="lm", steps=800, batch=64,
        about="4 attention-only layers x 8 heads, IOI only, next-token loss"),
    "D_mlp3_ioi_lm": dict(
        config=dict(attn_only=False), mix={"ioi": 1.0}, loss="lm", steps=800, batch=64,
        about="3 layers x 4 heads with MLPs, IOI only, next-token loss"),
    "E_attn3_mix_lm": dict(
        config={}, mix={"ioi": 0.5, "owner": 0.2, "list": 0.2, "repeat": 0.1}, loss="lm",
        steps=1400, batch=64,
        about="3 attention-only layers x 4 heads, IOI mixed with generic name-rich text, next-token loss"),
    "F_attn4x8_varied_lm": dict(
        config=dict(n_layers=4, n_heads=8, d_head=8), mix={"ioi": 1.0}, loss="lm", steps=1500,
        batch=64, varied_actions=True,
        about="4 attention-only layers x 8 heads, IOI with varied verb phrases, next-token loss"),
    "B2_attn3_ioi_lm_long": dict(
        config={}, mix={"ioi": 1.0}, loss="lm", steps=2500, batch=64,
        about="as B, trained for 2500 steps"),
    "G_attn3_varied_lm": dict(
        config={}, mix={"ioi": 1.0}, loss="lm", steps=2500, batch=64, varied_actions=True,
        about="3 attention-only layers x 4 heads, IOI with varied verb phrases, next-token loss"),
    "C2_attn4x8_ioi_lm_long": dict(
        config=dict(n_layers=4, n_heads=8, d_head=8), mix={"ioi": 1.0}, loss="lm", steps=1500,
        batch=64, about="as C, trained for 1500 steps"),
}
SHIPPED_VARIANT = "F_attn4x8_varied_lm"

# The roles found in the shipped checkpoint (see the model card for the evidence); the tests
# check that the shipped weights still behave this way.
SHIPPED_CIRCUIT: dict[str, Any] = {
    # At END, attends to the most recent name (S2 in IOI prompts) and writes it into END's
    # residual stream; little direct effect, large effect through later heads' queries.
    "s_inhibition": [(0, 6)],
    # At END, attends to IO more than to S1 (but only when 0.6 is present); writes IO into
    # the END residual stream rather than directly to the logits.
    "name_mover": (1, 7),
    # At END, attends to S2 and writes *against* S: the largest direct contributions to
    # logit(IO) - logit(S).
    "s_mover": (3, 5),
}

TRAIN_SEED = 0
LR = 3e-3


def _train_variant(variant: str, device: str = "cpu", log_every: int = 250):
    """Train one variant from scratch; returns (model, config, seconds)."""
    from interpbook.zoo.native import build_native

    spec_ = VARIANTS[variant]
    config = dict(BASE_CONFIG, **spec_["config"])
    torch.manual_seed(TRAIN_SEED)
    random.seed(TRAIN_SEED)
    model = build_native(config, tokenizer=None, device=device)
    steps, batch = spec_["steps"], spec_["batch"]
    tokens, ends, answers = training_examples(steps * batch, spec_["mix"], seed=TRAIN_SEED,
                                              varied_actions=spec_.get("varied_actions", False))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * max(0.05, 1 - s / steps))
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        sl = slice(step * batch, (step + 1) * batch)
        width = int(ends[sl].max()) + 2
        seq, e, y = tokens[sl, :width].to(device), ends[sl].to(device), answers[sl].to(device)
        logits = model(seq[:, :-1])
        # The answer (IO) is always scored; "lm" variants also score every other next token.
        loss = torch.nn.functional.cross_entropy(logits[torch.arange(len(e), device=device), e], y)
        if spec_.get("loss", "lm") == "lm":
            target = seq[:, 1:].masked_fill(seq[:, 1:] == PAD_ID, -100)
            loss = loss + torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"[{variant}] step {step:5d} loss {loss.item():.4f}", flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    return model, config, seconds


def evaluate(model, n: int = 1000, seed: int = 1) -> dict[str, Any]:
    """Held-out metrics: accuracy and logit diff per order, ABC logit diff."""
    ds = make_ioi_dataset(n, split="heldout", seed=seed)
    res: dict[str, Any] = {}
    for order in ("ABBA", "BABA"):
        sub = ds.by_order(order)
        res[f"heldout_accuracy_{order}"] = accuracy(model, sub)
        res[f"heldout_logit_diff_{order}"] = float(logit_diff(model, sub).mean())
    res["heldout_accuracy"] = accuracy(model, ds)
    res["heldout_logit_diff"] = float(logit_diff(model, ds).mean())
    res["abc_logit_diff"] = float(logit_diff(model, ds, corrupted=True).mean())
    dv = make_ioi_dataset(n, split="heldout", seed=seed, varied_actions=True)
    res["heldout_accuracy_varied_actions"] = accuracy(model, dv)
    res["heldout_logit_diff_varied_actions"] = float(logit_diff(model, dv).mean())
    tr = make_ioi_dataset(n, split="train", seed=seed + 100)
    res["train_pairs_accuracy"] = accuracy(model, tr)
    return res


def circuit_summary(model, n: int = 400, seed: int = 2) -> dict[str, Any]:
    """A compact description of which heads do what (stored per variant in metrics.json)."""
    ds = make_ioi_dataset(n, split="heldout", seed=seed)
    hs = head_summary(model, ds)
    H = model.cfg.n_heads

    def top(key, k=3, largest=True):
        v = hs[key].flatten()
        idx = v.topk(k, largest=largest).indices.tolist()
        return [[f"{i // H}.{i % H}", round(float(v[i]), 3)] for i in idx]

    return {
        "top_end_to_io": top("end_to_io"),
        "top_end_to_s2": top("end_to_s2"),
        "top_s2_to_s1": top("s2_to_s1"),
        "top_dla": top("dla"),
        "most_negative_dla": top("dla", largest=False),
        "top_ablation_drop": top("ablation_drop"),
        "per_head": {k: [[round(float(x), 3) for x in row] for row in v] for k, v in hs.items()},
    }


def train(name: str = MODEL_NAME, device: str | None = None) -> dict[str, Any]:
    """Regenerate the shipped checkpoint (variant :data:`SHIPPED_VARIANT`) deterministically."""
    from interpbook.zoo import checkpoints
    device = device or "cpu"
    torch.set_num_threads(1)
    model, config, seconds = _train_variant(SHIPPED_VARIANT, device=device)
    out_dir = checkpoints.checkpoint_dir(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_text(tokenizer_json())
    metrics = evaluate(model)
    metrics.update(
        variant=SHIPPED_VARIANT,
        variant_about=VARIANTS[SHIPPED_VARIANT]["about"],
        train_seconds=round(seconds, 1),
        train_device=device,
        train_steps=VARIANTS[SHIPPED_VARIANT]["steps"],
        batch_size=VARIANTS[SHIPPED_VARIANT]["batch"],
        loss=VARIANTS[SHIPPED_VARIANT]["loss"],
        train_mix=VARIANTS[SHIPPED_VARIANT]["mix"],
        circuit=circuit_summary(model),
    )
    old = out_dir / "metrics.json"
    if old.exists():  # keep the variant study (compare_variants) across re-training
        prev = json.loads(old.read_text())
        if "variants" in prev:
            metrics["variants"] = prev["variants"]
    checkpoints.save_checkpoint(name, model.state_dict(), config, metrics=metrics)
    return metrics


def compare_variants(variants: Sequence[str] | None = None, write: bool = True) -> dict[str, Any]:
    """Train each variant, measure accuracy and circuit summary; store under "variants"."""
    from interpbook.zoo import checkpoints

    torch.set_num_threads(1)
    results = {}
    for v in variants or list(VARIANTS):
        model, config, seconds = _train_variant(v)
        r = evaluate(model)
        r.update(about=VARIANTS[v]["about"], train_seconds=round(seconds, 1),
                 steps=VARIANTS[v]["steps"], circuit=circuit_summary(model))
        results[v] = r
        print(json.dumps({v: {k: x for k, x in r.items() if k != "circuit"}}, indent=1), flush=True)
    if write:
        path = checkpoints.checkpoint_dir(MODEL_NAME) / "metrics.json"
        if path.exists():
            m = json.loads(path.read_text())
            m.setdefault("variants", {}).update(results)
            path.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    return results


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def _load_default(device: str):
    from interpbook.zoo.native import load_native_checkpoint

    return load_native_checkpoint(MODEL_NAME, device=device)


def _load_full(device: str):
    from transformer_lens import TransformerBridge

    return TransformerBridge.boot_transformers("gpt2", device=device)


register(
    ModelSpec(
        name=MODEL_NAME,
        description="4-layer attention-only word-level model trained on IOI sentences",
        load_default=_load_default,
        load_full=_load_full,
        hub_name="gpt2",
        trainer="interpbook.zoo.ioi:train",
    )
)
