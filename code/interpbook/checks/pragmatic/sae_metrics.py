"""Checks for section 1, "Measuring a sparse autoencoder" (book/chapters/pragmatic/01-sae-metrics.md).

How the inputs are built, so that every right answer is known by construction:

* ``latent_frequencies``: a hand-made latent matrix in which each latent fires on a chosen number
  of tokens, with magnitudes far from 1 (so the mean activation is not the firing fraction), and
  a square case (so the wrong axis has the right shape).
* ``loss_recovered``: the real ``gpt-mini`` on four short held-out windows, with stand-in "SAEs"
  whose effect is known: the identity (loss recovered exactly 1), zeros (exactly 0, when BOS is
  left alone by both hooks) and a mask that keeps half of the coordinates (the check computes
  the three losses itself with :func:`interpbook.zoo.gpt_mini_sae.next_token_loss` and its own
  hooks, and also the numbers the usual slips give).
* ``train_topk_sae``: synthetic data made of 3 of 64 planted unit directions in 32 dimensions
  plus a large constant offset; a working trainer reaches a low FVU on fresh samples.
* ``pca_fvu``: training data whose principal directions and variances are exact (orthogonal
  columns), and test data in the same basis with a known shift, so the FVU of the rank-k
  reconstruction is a ratio of sums of known coordinates.
* ``next_token_kl``: logits built from chosen probability tables plus an arbitrary offset per
  token, including tokens with probability ``e^-300`` (which a float32 softmax rounds to 0).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from interpbook.checks import (
    CheckFailed,
    call,
    expect_close,
    expect_float,
    expect_no_leftover_hooks,
    expect_tensor,
    passed,
)

__all__ = [
    "check_latent_frequencies",
    "check_loss_recovered",
    "check_train_topk_sae",
    "check_pca_fvu",
    "check_next_token_kl",
]


# --- latent_frequencies -----------------------------------------------------------------------

def _firing_pattern(n_tokens: int, counts: list[int], seed: int) -> Tensor:
    """Latents [n_tokens, len(counts)]: latent j fires (positive value) on counts[j] tokens."""
    g = torch.Generator().manual_seed(seed)
    f = torch.zeros(n_tokens, len(counts))
    for j, c in enumerate(counts):
        rows = torch.randperm(n_tokens, generator=g)[:c]
        f[rows, j] = torch.rand(c, generator=g) * 6 + 0.3  # magnitudes between 0.3 and 6.3
    return f


def check_latent_frequencies(fn: Callable) -> None:
    """``fn(f)`` [tokens, d_sae] -> [d_sae]: the fraction of tokens on which each latent is > 0."""
    # Square first: 5 tokens, 5 latents, so summing over the wrong axis still has the right shape.
    for n_tokens, counts in ((5, [5, 0, 1, 3, 2]), (8, [1, 8, 0, 4])):
        f = _firing_pattern(n_tokens, counts, seed=n_tokens)
        d_sae = f.shape[1]
        expected = torch.tensor(counts, dtype=torch.float32) / n_tokens
        out = call(fn, f.clone(), what=f"(hand-made latents, {n_tokens} tokens x {d_sae} latents)")
        out = expect_tensor(out, "the latent frequencies", shape=(d_sae,), dims="d_sae", floating=True)
        out = out.detach().float().cpu()
        if torch.allclose(out, f.mean(0), atol=1e-5):
            raise CheckFailed(
                "you returned each latent's mean activation. The frequency counts *whether* a latent "
                "fires, not how strongly: average `(f > 0)` over the tokens.")
        if n_tokens == d_sae and torch.allclose(out, (f > 0).float().mean(1), atol=1e-5):
            raise CheckFailed(
                "you averaged over the latent axis, which gives the fraction of latents active on each "
                "token (L0 / d_sae). f is [tokens, d_sae]: average over the tokens, axis 0.")
        if torch.allclose(out, expected * n_tokens, atol=1e-5):
            raise CheckFailed(
                "you returned how many tokens each latent fires on; divide by the number of tokens, so "
                "the answer is a fraction between 0 and 1.")
        expect_close(out, expected, f"the latent frequencies ({n_tokens} tokens)", atol=1e-5, hint=(
            "A latent is active on a token when its value is > 0; return the fraction of rows of f "
            "on which each column is active."))
    passed("latent_frequencies counts how often each latent fires")


# --- loss_recovered ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _gpt_mini() -> Any:
    from interpbook.zoo import load_model

    return load_model("gpt-mini", device="cpu", shipped=True)


@functools.lru_cache(maxsize=1)
def _short_windows() -> Tensor:
    from interpbook.zoo.gpt_mini_sae import held_out_tokens

    return held_out_tokens(n_windows=4, n_ctx=32, seed=7)


class _Identity(nn.Module):
    """A perfect "SAE": returns its input."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class _Zeros(nn.Module):
    """The worst "SAE": reconstructs everything as zero."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


class _HalfMask(nn.Module):
    """A partial "SAE": keeps the first half of the coordinates, zeroes the rest."""

    def forward(self, x: Tensor) -> Tensor:
        keep = torch.arange(x.shape[-1], device=x.device) < x.shape[-1] // 2
        return x * keep


def _replace(fake: nn.Module, with_bos: bool) -> Callable:
    """The check's own hook: replace positions 1.. (and position 0 if ``with_bos``) by ``fake``."""
    start = 0 if with_bos else 1

    def hook(act: Tensor, hook: Any = None) -> Tensor:
        out = act.clone()
        out[:, start:] = fake(act[:, start:])
        return out

    return hook


def _losses(model: Any, tokens: Tensor, name: str, fake: nn.Module) -> dict[str, float]:
    from interpbook.zoo.gpt_mini_sae import next_token_loss

    return {
        "clean": next_token_loss(model, tokens),
        "spliced": next_token_loss(model, tokens, [(name, _replace(fake, False))]),
        "spliced_bos": next_token_loss(model, tokens, [(name, _replace(fake, True))]),
        "zero": next_token_loss(model, tokens, [(name, _replace(_Zeros(), False))]),
        "zero_bos": next_token_loss(model, tokens, [(name, _replace(_Zeros(), True))]),
    }


def _ratio(zero: float, spliced: float, clean: float) -> float:
    return (zero - spliced) / (zero - clean)


def check_loss_recovered(fn: Callable) -> None:
    """``fn(model, sae, tokens, hook_name)`` -> float: (L_zero - L_spliced) / (L_zero - L_clean),
    with every non-BOS position at ``hook_name`` replaced by the SAE's reconstruction (spliced)
    or by zeros (zero-ablated)."""
    model = _gpt_mini()
    tokens = _short_windows()
    name = "blocks.2.hook_resid_pre"
    fakes = (
        ("an identity 'SAE' (returns its input)", _Identity()),
        ("a 'SAE' that returns zeros", _Zeros()),
        ("a 'SAE' that keeps the first half of the coordinates", _HalfMask()),
    )
    for what, fake in fakes:
        got = call(fn, model, fake, tokens.clone(), name, what=f"({what}; 4 windows of 32 tokens)")
        expect_no_leftover_hooks(model, getattr(fn, "__name__", "your function"))
        got = expect_float(got, f"loss_recovered with {what}")
        L = _losses(model, tokens, name, fake)
        expected = _ratio(L["zero"], L["spliced"], L["clean"])
        if math.isclose(got, expected, abs_tol=2e-3):
            continue
        if math.isclose(got, 1 - expected, abs_tol=2e-3):
            raise CheckFailed(
                f"with {what} you returned {got:.4f}, the fraction of the loss *lost*: (L_spliced - L_clean) "
                "/ (L_zero - L_clean). Loss recovered is (L_zero - L_spliced) / (L_zero - L_clean): 1 for a "
                "perfect reconstruction, 0 for one no better than zeros.")
        bos = {
            "spliced and zero-ablated": _ratio(L["zero_bos"], L["spliced_bos"], L["clean"]),
            "spliced": _ratio(L["zero"], L["spliced_bos"], L["clean"]),
            "zero-ablated": _ratio(L["zero_bos"], L["spliced"], L["clean"]),
        }
        for which, value in bos.items():
            if math.isclose(got, value, abs_tol=2e-3):
                raise CheckFailed(
                    f"with {what} you returned {got:.4f}, the value you get when position 0 (BOS) is "
                    f"{which} too; expected {expected:.4f}. Leave BOS alone in both hooks (replace "
                    "`act[:, 1:]` only): it is the same vector in every window, the SAE was not trained "
                    "on it, and changing it breaks every later position's attention.")
        raise CheckFailed(
            f"with {what} you returned {got:.4f}; expected {expected:.4f} (clean loss {L['clean']:.4f}, "
            f"spliced {L['spliced']:.4f}, zero-ablated {L['zero']:.4f}). Use the mean next-token loss over "
            "every position for each run, and in both hooks replace positions 1.. of the residual stream.")
    passed("loss_recovered splices the reconstruction at every position but BOS")


# --- train_topk_sae ---------------------------------------------------------------------------

_PLANTED_SEED = 1234


def _planted(n: int, seed: int, n_features: int = 64, d: int = 32, active: int = 3) -> tuple[Tensor, Tensor]:
    """``n`` samples, each a sum of ``active`` of ``n_features`` planted unit directions with
    magnitudes in [0.5, 1.5], plus a fixed offset of norm about 11. Returns (samples, offset)."""
    g = torch.Generator().manual_seed(_PLANTED_SEED)
    directions = torch.randn(n_features, d, generator=g)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    offset = torch.randn(d, generator=g) * 2.0
    g = torch.Generator().manual_seed(seed)
    which = torch.rand(n, n_features, generator=g).argsort(-1)[:, :active]
    size = torch.rand(n, active, generator=g) + 0.5
    coef = torch.zeros(n, n_features).scatter(-1, which, size)
    return coef @ directions + offset, offset


def _fvu(x: Tensor, recon: Tensor) -> float:
    return (((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()).item()


def check_train_topk_sae(fn: Callable) -> None:
    """``fn(acts, d_sae, k, steps, batch, lr, seed)`` -> a trained ``TopKSAE`` with unit decoder rows."""
    from interpbook.zoo.gpt_mini_sae import TopKSAE

    acts, offset = _planted(8192, seed=0)
    d_sae, k = 64, 3
    what = "(8192 synthetic samples: 3 of 64 planted directions in 32 dims, plus an offset)"
    given = acts.clone()
    with torch.no_grad():  # as on the page: the function must turn gradients on itself
        try:
            sae = call(fn, given, d_sae, k, 300, batch=512, lr=3e-3, seed=0, what=what)
        except CheckFailed as e:
            if "does not require grad" in str(e):
                raise CheckFailed(
                    "your training loop ran without gradients: the page turns them off with "
                    "`torch.set_grad_enabled(False)`. Wrap the loop in `with torch.enable_grad():`.") from e
            raise
    if not torch.equal(given, acts):
        raise CheckFailed("train_topk_sae changed the `acts` tensor it was given; work on copies (e.g. "
                          "`x - sae.b_dec` rather than an in-place `acts -= ...`).")
    if not isinstance(sae, TopKSAE):
        raise CheckFailed(f"train_topk_sae should return the trained TopKSAE; got {type(sae).__name__}.")
    if sae.d_sae != d_sae or sae.d_in != acts.shape[1] or sae.k != k:
        raise CheckFailed(f"the returned SAE has d_in {sae.d_in}, d_sae {sae.d_sae}, k {sae.k}; expected "
                          f"d_in {acts.shape[1]}, d_sae {d_sae}, k {k}.")
    sae = sae.cpu()
    with torch.no_grad():
        norms = sae.W_dec.norm(dim=-1)
        if (norms - 1).abs().max() > 1e-3:
            raise CheckFailed(
                f"the decoder rows have norms between {norms.min():.3f} and {norms.max():.3f}; they should "
                "all be 1. Renormalise `W_dec` after every optimiser step (inside `torch.no_grad()`): Adam's "
                "updates lengthen some rows and shorten others, and a latent could then shrink its activation "
                "and grow its row without changing the reconstruction.")
        test, _ = _planted(4096, seed=1)
        f = sae.encode(test)
        l0 = (f > 0).float().sum(-1).mean().item()
        fvu = _fvu(test, sae.decode(f))
        b_dec_off = ((sae.b_dec - offset).norm() / offset.norm()).item()
    if l0 > k + 1e-6:
        raise CheckFailed(f"the returned SAE has L0 {l0:.2f} > k = {k}; its encode should keep k latents.")
    if fvu > 0.3:
        if b_dec_off > 0.5:
            raise CheckFailed(
                f"after 300 steps the SAE leaves {fvu:.2f} of the variance of fresh samples unexplained (a "
                "working trainer gets about 0.1), and its b_dec is far from the data's mean. Initialise "
                "`b_dec` to `acts.mean(0)` before training: the data sit far from the origin, and the "
                "optimiser takes many steps to move b_dec there on its own.")
        raise CheckFailed(
            f"after 300 steps the SAE leaves {fvu:.2f} of the variance of fresh samples unexplained; a working "
            "trainer gets about 0.1. Check that every step draws a fresh batch, calls `opt.zero_grad()` "
            "(otherwise gradients pile up across steps) before `loss.backward()` and `opt.step()`, and that "
            "the loss is the batch's FVU (or its squared error).")
    passed(f"train_topk_sae learns the planted data (FVU {fvu:.3f} on fresh samples, L0 {l0:.2f})")


# --- pca_fvu ----------------------------------------------------------------------------------

def _pca_data() -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(train, test, Q, test coordinates b, shift coordinates s). In the orthonormal basis Q the
    training data have exactly zero mean offset from ``mu`` and a diagonal covariance with
    decreasing variances; the test data are ``mu + Q (b + s)``."""
    d, n_train, n_test = 8, 64, 48
    g = torch.Generator().manual_seed(5)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    mu = 6 * mu / mu.norm()
    z = torch.randn(n_train, d, generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    U, _ = torch.linalg.qr(z)  # orthonormal columns, each with zero mean
    stds = torch.tensor([3.0, 2.0, 1.5, 0.3, 0.2, 0.1, 0.05, 0.02], dtype=torch.float64)
    train = mu + (U * math.sqrt(n_train) * stds) @ Q.T
    b = torch.randn(n_test, d, generator=g, dtype=torch.float64) * torch.tensor(
        [3.0, 2.0, 1.5, 2.5, 2.5, 2.5, 2.5, 2.5], dtype=torch.float64)
    s = torch.zeros(d, dtype=torch.float64)
    s[-1] = 1.5  # the test set sits a little off the training mean, in a direction PCA discards
    test = mu + (b + s) @ Q.T
    return train.float(), test.float(), Q, b, s


def _fvu64(x: Tensor, recon: Tensor) -> float:
    x, recon = x.double(), recon.double()
    return (((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()).item()


def _project_fvu(test: Tensor, centre: Tensor, P: Tensor, add_back: bool = True) -> float:
    test, centre, P = test.double(), centre.double(), P.double()
    recon = (test - centre) @ P @ P.T + (centre if add_back else 0)
    return _fvu64(test, recon)


def check_pca_fvu(fn: Callable) -> None:
    """``fn(acts_train, acts_test, k)`` -> float: the test FVU of the rank-k PCA reconstruction
    fitted (mean and directions) on the training activations."""
    train, test, Q, b, s = _pca_data()
    centred = (b + s) - (b + s).mean(0)
    for k in (2, 3):
        got = call(fn, train.clone(), test.clone(), k,
                   what=f"(64 training and 48 test vectors in 8 dims, k={k})")
        got = expect_float(got, f"pca_fvu(..., k={k})")
        # The reconstruction error lives in the discarded directions Q[:, k:], shift included.
        expected = (((b + s)[:, k:]) ** 2).sum().item() / (centred**2).sum().item()
        if math.isclose(got, expected, abs_tol=1e-3):
            continue
        train64, test64 = train.double(), test.double()
        mean = train64.mean(0)
        wrong: list[tuple[float, str]] = []
        Vh_raw = torch.linalg.svd(train64, full_matrices=False)[2]
        wrong.append((_project_fvu(test64, torch.zeros_like(mean), Vh_raw[:k].T), (
            "you took the principal directions of the raw activations, without subtracting their mean "
            "first; the first direction then points at the mean, not along the spread. Centre the training "
            "activations on their mean, and reconstruct the test ones as mean + projection of (x - mean).")))
        Vh = torch.linalg.svd(train64 - mean, full_matrices=False)[2]
        wrong.append((_project_fvu(test64, mean, Vh[:k].T, add_back=False), (
            "you left out the mean when reconstructing: the reconstruction is mean + P Pᵀ (x - mean).")))
        wrong.append((_project_fvu(test64, mean, Vh[-k:].T), (
            "you kept the k directions of *least* variance. `torch.linalg.eigh` returns eigenvalues in "
            "ascending order (take the last k columns); `torch.linalg.svd` returns singular values in "
            "descending order (take the first k rows of Vh).")))
        wrong.append((_project_fvu(test64, mean, Vh[:, :k]), (
            "you took the first k *columns* of Vh. `torch.linalg.svd` returns Vh = Vᵀ: the principal "
            "directions are its rows, `Vh[:k]` (shape [k, d]).")))
        Vh_test = torch.linalg.svd(test64 - test64.mean(0), full_matrices=False)[2]
        wrong.append((_project_fvu(test64, test64.mean(0), Vh_test[:k].T), (
            "you fitted the PCA on the test activations. The baseline, like the SAE, must be fitted on the "
            "training activations only, then measured on the held-out ones.")))
        wrong.append((_project_fvu(test64, test64.mean(0), Vh[:k].T), (
            "you centred the test activations on their own mean. The mean is part of the fitted baseline "
            "(like the SAE's b_dec): use the training mean for the test activations too.")))
        for value, message in wrong:
            if math.isclose(got, value, abs_tol=1e-3):
                raise CheckFailed(f"pca_fvu(..., k={k}) returned {got:.4f}; expected {expected:.4f}: {message}")
        raise CheckFailed(
            f"pca_fvu(..., k={k}) returned {got:.4f}; expected {expected:.4f}. Fit the mean and the top-k "
            "principal directions on acts_train, reconstruct acts_test as mean + P Pᵀ (x - mean), and return "
            "the FVU of that reconstruction (squared error over the test set's variance about its own mean).")
    passed("pca_fvu fits the baseline on the training activations and measures it on the test ones")


# --- next_token_kl ----------------------------------------------------------------------------

def _kl_tables() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Log-probability tables [batch=2, pos=3, vocab=4] for the clean and spliced runs (float64),
    and the logits handed to the learner (log-probs plus a different offset per token and run)."""
    g = torch.Generator().manual_seed(11)
    p = torch.softmax(torch.randn(2, 3, 4, generator=g, dtype=torch.float64) * 2, -1)
    q = torch.softmax(torch.randn(2, 3, 4, generator=g, dtype=torch.float64) * 2, -1)
    q[0, 2] = p[0, 2]  # one token the splice did not change: KL exactly 0
    log_p, log_q = p.log(), q.log()
    # One token where the spliced run gives a token probability e^-300 (a float32 softmax rounds it
    # to 0), and one where the clean run does: only a log_softmax gets these right.
    tiny = torch.tensor([0.0, 0.0, 0.0, -300.0], dtype=torch.float64)
    log_p[1, 1] = torch.log_softmax(torch.tensor([1.0, 0.5, 0.0, 0.2], dtype=torch.float64), -1)
    log_q[1, 1] = torch.log_softmax(tiny, -1)
    log_p[1, 2] = torch.log_softmax(tiny.flip(0), -1)
    log_q[1, 2] = torch.log_softmax(torch.tensor([0.3, 0.0, 0.2, 1.0], dtype=torch.float64), -1)
    offsets_p = torch.randn(2, 3, 1, generator=g, dtype=torch.float64) * 5
    offsets_q = torch.randn(2, 3, 1, generator=g, dtype=torch.float64) * 5
    return log_p, log_q, (log_p + offsets_p).float(), (log_q + offsets_q).float()


def check_next_token_kl(fn: Callable) -> None:
    """``fn(clean_logits, spliced_logits)`` [batch, pos, d_vocab] -> [batch, pos]:
    KL(P_clean || P_spliced) of the next-token distributions at every position."""
    log_p, log_q, clean, spliced = _kl_tables()
    got = call(fn, clean.clone(), spliced.clone(), what="(hand-made logits, [batch=2, pos=3, d_vocab=4])")
    got = expect_tensor(got, "the KL divergences", shape=(2, 3), dims="batch pos", floating=True)
    got = got.detach().double().cpu()
    p, q = log_p.exp(), log_q.exp()
    expected = (p * (log_p - log_q)).sum(-1)
    if not torch.isfinite(got).all():
        bad = [list(i) for i in torch.nonzero(~torch.isfinite(got)).tolist()]
        raise CheckFailed(
            f"your KL is inf or nan at {bad}, where one run gives a token a probability of e^-300, which a "
            "float32 softmax rounds to 0 and whose log is then -inf. Take log-probabilities with "
            "`torch.log_softmax(logits, -1)` (exact even there) instead of `softmax(...).log()`.")
    if torch.allclose(got, (q * (log_q - log_p)).sum(-1), rtol=1e-3, atol=1e-4):
        raise CheckFailed(
            "you computed KL(P_spliced || P_clean): the arguments are the wrong way round. The clean "
            "distribution is the reference: sum over the vocabulary of p_clean * (log p_clean - log "
            "p_spliced). (`F.kl_div(input, target)` computes KL(target || input): input is the spliced "
            "log-probabilities, target the clean ones.)")
    raw = (p * (clean.double() - spliced.double())).sum(-1)
    if torch.allclose(got, raw, rtol=1e-3, atol=1e-4):
        raise CheckFailed(
            "you used the raw logits as log-probabilities. Logits are log-probabilities plus a different "
            "constant at every token (the log of the softmax's denominator); apply `log_softmax` to both.")
    if torch.allclose(got, expected / 4, rtol=1e-3, atol=1e-4):
        raise CheckFailed("you averaged over the vocabulary; KL is a *sum* over the vocabulary.")
    expect_close(got, expected, "KL(P_clean || P_spliced)", atol=1e-3, rtol=1e-3, hint=(
        "With lp = log_softmax(clean_logits) and lq = log_softmax(spliced_logits), the KL at each position is "
        "(lp.exp() * (lp - lq)).sum(-1)."))
    passed("next_token_kl compares the clean and spliced next-token distributions")
