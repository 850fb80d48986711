"""Modular addition, ``a + b mod p``: every problem, and the train/test split the
``modular-addition`` model (:mod:`interpbook.zoo.modular_addition`) was trained on.

A problem is three tokens ``a b =``: token ids ``0 .. p-1`` are the numbers themselves and id
``p`` is ``=``, so there is no tokenizer. The answer ``(a + b) mod p`` is read at the last
position. Problems are numbered ``a * p + b`` (``a``-major), so a tensor over all problems
reshapes to a ``[p, p, ...]`` grid with ``.view(p, p, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

P = 113
TRAIN_FRACTION = 0.3
DATA_SEED = 0



@dataclass(frozen=True)
class ModularAdditionData:
    """All ``p * p`` problems, in order ``a * p + b``, and the train/test split.

    ``tokens[i] = [a, b, p]``, ``labels[i] = (a + b) % p``.
    """

    p: int
    tokens: torch.Tensor  # [p*p, 3] int64
    labels: torch.Tensor  # [p*p] int64
    train_indices: torch.Tensor  # sorted indices into tokens
    test_indices: torch.Tensor

    @property
    def train_tokens(self) -> torch.Tensor:
        return self.tokens[self.train_indices]

    @property
    def train_labels(self) -> torch.Tensor:
        return self.labels[self.train_indices]

    @property
    def test_tokens(self) -> torch.Tensor:
        return self.tokens[self.test_indices]

    @property
    def test_labels(self) -> torch.Tensor:
        return self.labels[self.test_indices]

    @property
    def train_mask(self) -> torch.Tensor:
        """``[p, p]`` bool grid: ``train_mask[a, b]`` is True if ``a + b`` was a training problem."""
        mask = torch.zeros(self.p * self.p, dtype=torch.bool)
        mask[self.train_indices] = True
        return mask.view(self.p, self.p)


def all_pairs(p: int = P) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``[p*p, 3]`` (``a b =``) and labels ``[p*p]`` for every pair, ``a``-major order."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    tokens = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    return tokens, (a + b) % p


def train_test_split(
    p: int = P, train_fraction: float = TRAIN_FRACTION, seed: int = DATA_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic split of the ``p*p`` pair indices: (train, test), each sorted."""
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n_train = int(train_fraction * p * p)
    return perm[:n_train].sort().values, perm[n_train:].sort().values


def dataset(
    p: int = P, train_fraction: float = TRAIN_FRACTION, seed: int = DATA_SEED
) -> ModularAdditionData:
    """The data set the shipped model was trained on (with the default arguments)."""
    tokens, labels = all_pairs(p)
    train_idx, test_idx = train_test_split(p, train_fraction, seed)
    return ModularAdditionData(p, tokens, labels, train_idx, test_idx)
