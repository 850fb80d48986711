"""Six word-level tasks for in-context learning, over one shared vocabulary of English words.

A prompt lists examples of one task and ends with a query: ``hot -> cold , big -> small , fast ->``
(answer ``slow``). The same input word belongs to several tasks (``hot`` has an antonym, a French
translation and a first letter), so with no examples the task is ambiguous: it can only be read
from the examples in context.

Every pair of every task is also written, during training, as a *named* statement:
``antonym : hot -> cold``. The ``held_out`` pairs (a fifth of each task, seeded) appear only
there, never in an unnamed prompt. A held-out query therefore tests what in-context learning
tests in a pretrained model: infer the task from the examples, then retrieve a fact the model
learnt elsewhere.

The word lists are the book's own; they are small on purpose (a word-level vocabulary of a few
hundred tokens).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

TASKS = ("antonym", "plural", "capital", "next", "french", "letter")
ARROW, COMMA, COLON = "->", ",", ":"
BOS, PAD, UNK = "<bos>", "<pad>", "<unk>"

_ANTONYMS = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"),
    ("high", "low"), ("long", "short"), ("hard", "soft"), ("rich", "poor"), ("strong", "weak"),
    ("wet", "dry"), ("early", "late"), ("full", "empty"), ("open", "closed"), ("clean", "dirty"),
    ("loud", "quiet"), ("thick", "thin"), ("wide", "narrow"), ("good", "bad"), ("true", "false"),
    ("young", "old"), ("near", "far"), ("sweet", "bitter"), ("easy", "difficult"), ("alive", "dead"),
    ("first", "last"),
]
_ADJECTIVE_FRENCH = {
    "hot": "chaud", "cold": "froid", "big": "grand", "small": "petit", "fast": "rapide", "slow": "lent",
    "happy": "heureux", "sad": "triste", "light": "clair", "dark": "sombre", "high": "haut", "low": "bas",
    "long": "long", "short": "court", "hard": "dur", "soft": "doux", "rich": "riche", "poor": "pauvre",
    "strong": "fort", "weak": "faible", "wet": "mouille", "dry": "sec", "early": "tot", "late": "tard",
    "full": "plein", "empty": "vide", "open": "ouvert", "closed": "ferme", "clean": "propre",
    "dirty": "sale", "loud": "bruyant", "quiet": "calme", "thick": "epais", "thin": "mince",
    "wide": "large", "narrow": "etroit", "good": "bon", "bad": "mauvais", "true": "vrai", "false": "faux",
    "young": "jeune", "old": "vieux", "near": "proche", "far": "loin", "sweet": "sucre", "bitter": "amer",
    "easy": "facile", "difficult": "difficile", "alive": "vivant", "dead": "mort", "first": "premier",
    "last": "dernier",
}
# (singular, plural, French): French without accents, so every word is one plain token
_NOUNS = [
    ("cat", "cats", "chat"), ("dog", "dogs", "chien"), ("house", "houses", "maison"),
    ("tree", "trees", "arbre"), ("book", "books", "livre"), ("car", "cars", "voiture"),
    ("bird", "birds", "oiseau"), ("child", "children", "enfant"), ("mouse", "mice", "souris"),
    ("man", "men", "homme"), ("woman", "women", "femme"), ("foot", "feet", "pied"),
    ("tooth", "teeth", "dent"), ("apple", "apples", "pomme"), ("horse", "horses", "cheval"),
    ("city", "cities", "ville"), ("box", "boxes", "boite"), ("knife", "knives", "couteau"),
    ("leaf", "leaves", "feuille"), ("wolf", "wolves", "loup"), ("day", "days", "jour"),
    ("night", "nights", "nuit"), ("hand", "hands", "main"), ("door", "doors", "porte"),
    ("key", "keys", "cle"), ("river", "rivers", "riviere"), ("mountain", "mountains", "montagne"),
    ("star", "stars", "etoile"), ("sea", "seas", "mer"), ("window", "windows", "fenetre"),
]
_CAPITALS = [
    ("france", "paris"), ("spain", "madrid"), ("italy", "rome"), ("germany", "berlin"), ("japan", "tokyo"),
    ("china", "beijing"), ("egypt", "cairo"), ("kenya", "nairobi"), ("peru", "lima"), ("chile", "santiago"),
    ("canada", "ottawa"), ("russia", "moscow"), ("greece", "athens"), ("poland", "warsaw"),
    ("norway", "oslo"), ("sweden", "stockholm"), ("finland", "helsinki"), ("austria", "vienna"),
    ("portugal", "lisbon"), ("ireland", "dublin"), ("cuba", "havana"), ("iran", "tehran"),
    ("turkey", "ankara"), ("australia", "canberra"), ("hungary", "budapest"), ("denmark", "copenhagen"),
    ("belgium", "brussels"), ("nepal", "kathmandu"), ("thailand", "bangkok"), ("vietnam", "hanoi"),
]
_NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
            "twenty"]
_NUMBERS_FRENCH = ["un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze",
                   "douze", "treize", "quatorze", "quinze", "seize", "dix-sept", "dix-huit", "dix-neuf",
                   "vingt"]


def task_pairs() -> dict[str, list[tuple[str, str]]]:
    """Every (input, answer) pair of every task, in a fixed order."""
    pairs: dict[str, list[tuple[str, str]]] = {
        "antonym": _ANTONYMS + [(b, a) for a, b in _ANTONYMS],
        "plural": [(s, p) for s, p, _ in _NOUNS],
        "capital": list(_CAPITALS),
        "next": list(zip(_NUMBERS[:-1], _NUMBERS[1:])),
        "french": (list(_ADJECTIVE_FRENCH.items()) + [(s, f) for s, _, f in _NOUNS]
                   + list(zip(_NUMBERS, _NUMBERS_FRENCH))),
    }
    inputs = sorted({x for task in pairs.values() for x, _ in task})
    pairs["letter"] = [(w, w[0]) for w in inputs]
    return {t: pairs[t] for t in TASKS}


def split_pairs(seed: int = 0, held_out_fraction: float = 0.2
                ) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[tuple[str, str]]]]:
    """``(train, held_out)``: a seeded fifth of each task's pairs (at least 3) is held out."""
    rng = random.Random(seed)
    train, held = {}, {}
    for task, pairs in task_pairs().items():
        shuffled = pairs[:]
        rng.shuffle(shuffled)
        n = max(3, round(held_out_fraction * len(pairs)))
        held[task], train[task] = shuffled[:n], shuffled[n:]
    return train, held


def vocabulary() -> list[str]:
    """Every token: the specials, the task names, then all words and the 26 letters, sorted."""
    words = {w for pairs in task_pairs().values() for pair in pairs for w in pair}
    words |= set("abcdefghijklmnopqrstuvwxyz")
    specials = [BOS, PAD, UNK, ARROW, COMMA, COLON, *TASKS]
    return specials + sorted(words - set(specials))


def icl_prompt(examples: Sequence[tuple[str, str]], query: str) -> str:
    """``x1 -> y1 , x2 -> y2 , ... , query ->`` (no examples: ``query ->``, a zero-shot prompt)."""
    parts = [f"{x} {ARROW} {y} {COMMA} " for x, y in examples]
    return "".join(parts) + f"{query} {ARROW}"


def statement(task: str, x: str, y: str) -> str:
    """The named form every pair is also trained on: ``antonym : hot -> cold``."""
    return f"{task} {COLON} {x} {ARROW} {y}"


def sample_prompts(task: str, n: int, n_examples: int, *, queries: str = "held_out", seed: int = 0,
                   shuffle_labels: bool = False, random_labels: bool = False) -> tuple[list[str], list[str]]:
    """``n`` prompts of ``task`` with ``n_examples`` training examples each and a query drawn
    from the ``queries`` split (``"held_out"`` or ``"train"``; never among its own examples);
    returns ``(prompts, answers)``. Two corrupted contexts keep the same inputs and query:
    ``shuffle_labels`` gives each example another example's answer (the answers still show
    which kind of word the task outputs), ``random_labels`` gives each example a random answer
    word of another task (neither the pairs nor the kind of answer show the task)."""
    if shuffle_labels and random_labels:
        raise ValueError("choose one corruption: shuffle_labels or random_labels")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the tasks are {', '.join(TASKS)}")
    if queries not in ("held_out", "train"):
        raise ValueError(f"queries must be 'held_out' or 'train', got {queries!r}")
    train, held = split_pairs()
    pool = held[task] if queries == "held_out" else train[task]
    rng = random.Random(f"{task}/{n_examples}/{queries}/{seed}")
    shuffler = random.Random(f"shuffle/{task}/{n_examples}/{queries}/{seed}")
    prompts, answers = [], []
    for i in range(n):
        x, y = pool[i % len(pool)] if i < len(pool) else rng.choice(pool)
        examples = rng.sample([p for p in train[task] if p[0] != x], n_examples)
        if shuffle_labels and n_examples > 1:
            # the same prompts as without shuffling, but each example gets another one's answer
            order = list(range(n_examples))
            shuffler.shuffle(order)
            ys = [b for _, b in examples]
            moved = {order[j]: ys[order[(j + 1) % n_examples]] for j in range(n_examples)}
            examples = [(a, moved[j]) for j, (a, _) in enumerate(examples)]
        if random_labels:
            others = sorted({b for t, pairs in task_pairs().items() if t != task for _, b in pairs}
                            - {b for _, b in task_pairs()[task]})
            examples = [(a, shuffler.choice(others)) for a, _ in examples]
        prompts.append(icl_prompt(examples, x))
        answers.append(y)
    return prompts, answers
