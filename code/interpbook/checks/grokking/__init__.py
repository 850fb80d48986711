"""Checks of the chapter "Grokking and modular addition" (``book/chapters/grokking/``), one
module per section page, and what they share."""

from __future__ import annotations

import torch


def random_orthonormal_rows(p: int, seed: int) -> torch.Tensor:
    """A ``[p, p]`` float32 matrix with orthonormal rows that is not symmetric: a stand-in for the
    Fourier basis under which an answer is known by construction, and under which a transposed
    basis gives a visibly wrong one."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(p, p, generator=g, dtype=torch.float64))
    return q.T.float()
