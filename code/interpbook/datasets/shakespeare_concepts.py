"""Concepts in the Shakespeare plays, labelled automatically, token by token.

The probing chapter needs text where a concept is known at every token without a human
labeller. The plays' layout gives two for free:

``stage_direction``
    the token lies inside square brackets: ``[Enter Macbeth and Banquo.]``. Whether a word is
    a stage direction depends on a ``[`` that may be many tokens back, so this is a *context*
    concept, not a token-identity one. Tokens that contain a bracket themselves (``[``, ``.]``)
    are left unlabelled (-1): they would make the concept a token detector.
``verse``
    the token is in a verse speech (1) or a prose speech (0). Verse lines each start with a
    capital letter; prose is wrapped wherever the line ran out, so its continuation lines often
    start in lower case. A speech (the lines under a speaker's ``NAME.`` heading) of at least
    three lines is verse when every line starts with a capital, and prose when at least half of
    its continuation lines start in lower case; other speeches and each speech's first line (the
    model cannot yet tell) are unlabelled.

Labels are computed per character, then a token takes its label when all its characters share
it (else -1). Splits follow :mod:`interpbook.zoo.text_data`: the training plays, and the
held-out plays (Macbeth, Twelfth Night) the probes are tested on.
"""

from __future__ import annotations

import hashlib
import os
import re

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

CONCEPTS = ("stage_direction", "verse")
UNLABELLED = -1

_STAGE = re.compile(r"\[[^\]]*\]")
_HEADING = re.compile(r"^[A-Z][A-Z .'\-]*\.$")


def stage_direction_chars(text: str) -> np.ndarray:
    """Per character: 1 strictly inside ``[...]``, 0 outside, -1 on the brackets."""
    out = np.zeros(len(text), dtype=np.int8)
    for m in _STAGE.finditer(text):
        out[m.start()] = out[m.end() - 1] = UNLABELLED
        out[m.start() + 1 : m.end() - 1] = 1
    return out


def _speeches(text: str) -> list[list[tuple[int, str]]]:
    """Speeches as lists of (character offset, line), the heading left out."""
    speeches: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] | None = None
    offset = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if _HEADING.match(stripped):
            current = []
            speeches.append(current)
        elif not stripped:
            current = None
        elif current is not None and not stripped.startswith("["):
            current.append((offset, line))
        offset += len(line) + 1
    return speeches


def _starts_upper(line: str) -> bool:
    letters = [c for c in line.lstrip(" \"'([-") if c.isalpha()]
    return bool(letters) and letters[0].isupper()


def verse_chars(text: str) -> np.ndarray:
    """Per character: 1 in verse speeches, 0 in prose ones, -1 elsewhere (see the module)."""
    out = np.full(len(text), UNLABELLED, dtype=np.int8)
    for speech in _speeches(text):
        if len(speech) < 3:
            continue
        rest = speech[1:]
        lower = sum(not _starts_upper(line) for _, line in rest)
        if all(_starts_upper(line) for _, line in speech):
            label = 1
        elif lower >= len(rest) / 2:
            label = 0
        else:
            continue
        for start, line in rest:
            out[start : start + len(line) + 1] = label  # the line and its newline
    return out


def token_labels(tokenizer_json: str, text: str) -> tuple[Tensor, dict[str, Tensor]]:
    """Token ids of ``text`` and, per concept, an int8 label per token (-1: unlabelled)."""
    from tokenizers import Tokenizer

    enc = Tokenizer.from_str(tokenizer_json).encode(text)
    chars = {"stage_direction": stage_direction_chars(text), "verse": verse_chars(text)}
    offsets = np.array(enc.offsets, dtype=np.int64).reshape(-1, 2)
    start, end = offsets[:, 0], offsets[:, 1]
    labels = {}
    for name, per_char in chars.items():
        # changes[i]: how many times the label changes between characters 0 and i, so a token's
        # characters [start, end) share one label exactly when changes[end - 1] == changes[start].
        changes = np.concatenate([[0], np.cumsum(per_char[1:] != per_char[:-1])])
        uniform = (end > start) & (changes[np.maximum(end - 1, 0)] == changes[np.minimum(start, len(text) - 1)])
        lab = np.where(uniform, per_char[np.minimum(start, len(text) - 1)], UNLABELLED).astype(np.int8)
        labels[name] = torch.from_numpy(lab)
    return torch.tensor(enc.ids, dtype=torch.int16), labels


def concept_streams(split: str = "train") -> tuple[Tensor, dict[str, Tensor]]:
    """All plays of ``split`` ("train" or "held_out") as one token stream with its labels,
    cached on disk beside the token streams."""
    from interpbook.zoo import checkpoints, text_data

    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    tok_json = checkpoints.tokenizer_path("gpt-mini").read_text()
    key = hashlib.sha256(tok_json.encode()).hexdigest()[:16]
    path = text_data.cache_dir() / "shakespeare" / f"concepts-{split}-{key}.pt"
    if path.exists():
        d = torch.load(path)
        return d["tokens"].long(), d["labels"]
    train, held_out = text_data.split_texts()
    parts = [token_labels(tok_json, t) for t in (train if split == "train" else held_out)]
    tokens = torch.cat([p[0] for p in parts])
    labels = {c: torch.cat([p[1][c] for p in parts]) for c in CONCEPTS}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # atomic: parallel builds and tests read it
    torch.save({"tokens": tokens, "labels": labels}, tmp)
    os.replace(tmp, path)
    return tokens.long(), labels


def concept_windows(split: str = "train", n_windows: int = 64, n_ctx: int = 128, seed: int = 0,
                    ) -> tuple[Int[Tensor, "n n_ctx"], dict[str, Int[Tensor, "n n_ctx"]]]:
    """``n_windows`` random windows ``[bos, t_1 .. t_{n_ctx-1}]`` and their labels (BOS: -1)."""
    tokens, labels = concept_streams(split)
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(tokens) - n_ctx, (n_windows,), generator=g).tolist()
    idx = torch.tensor(starts)[:, None] + torch.arange(n_ctx - 1)
    bos = torch.zeros(n_windows, 1, dtype=torch.long)
    out_tokens = torch.cat([bos, tokens[idx]], dim=1)
    out_labels = {c: torch.cat([torch.full((n_windows, 1), UNLABELLED, dtype=torch.int8), lab[idx]], dim=1)
                  for c, lab in labels.items()}
    return out_tokens, out_labels


def stage_direction_vocab(min_count: int = 50, min_fraction: float = 0.8) -> Tensor:
    """Token ids that, in the training plays, occur at least ``min_count`` times and at least
    ``min_fraction`` of the time inside stage directions (``Enter``, ``Exit``, ``Exeunt`` ...)
    or close one (``.]``). A model that "thinks it is in a stage direction" puts more
    probability on them: the steering experiments measure that mass."""
    tokens, labels = concept_streams("train")
    lab = labels["stage_direction"]
    closing = torch.zeros_like(lab, dtype=torch.bool)
    closing[1:] = (lab[1:] == UNLABELLED) & (lab[:-1] == 1)  # "]" or ".]" right after the inside
    in_stage = (lab == 1) | closing
    counts = torch.bincount(tokens, minlength=int(tokens.max()) + 1).float()
    in_counts = torch.bincount(tokens[in_stage], minlength=len(counts)).float()
    keep = (counts >= min_count) & (in_counts >= min_fraction * counts)
    return keep.nonzero().flatten()


def labelled(acts: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Flatten ``acts [n, pos, d]`` and ``labels [n, pos]`` to the labelled tokens only:
    ``X [m, d]`` and ``y [m]`` (0/1, as a long tensor)."""
    if acts.shape[:2] != labels.shape:
        raise ValueError(f"acts {tuple(acts.shape)} and labels {tuple(labels.shape)} must agree on [n, pos]")
    keep = labels != UNLABELLED
    return acts[keep.to(acts.device)], labels[keep].long().to(acts.device)
