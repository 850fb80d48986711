"""Checks for section 2, "Reading latents" (book/chapters/pragmatic/02-reading-latents.md).

Every input is built by hand so that the answer is known without running the solution:

* ``top_activations``: mostly-zero activation grids with planted maxima: two in one window, a
  tie between two windows, one in the last column, on grids wider than tall and taller than
  wide (so unravelling a flat index with the wrong width gives a different answer).
* ``latent_logit_effect``: a small :class:`~interpbook.zoo.gpt_mini_sae.TopKSAE` whose weights
  are set by hand (encoder columns that are *not* the decoder rows, a non-zero decoder bias) and
  a hand-made unembedding, first square (so shape slips run and must be caught by value), then
  rectangular.
* ``top_token_rule``: a token sequence with a frequent token of high mean activation, a rare
  token of higher mean, a token that holds the single largest activation, a very frequent token
  of large total activation, and a token that fires rarely but strongly.
* ``explanation_score``: predictions and activations with known true/false positives and
  negatives, hence known F1, including weak firings that lie below the mean activation.

None of them needs the shipped SAE or model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_close, expect_tensor, passed

__all__ = [
    "check_top_activations",
    "check_latent_logit_effect",
    "check_top_token_rule",
    "check_explanation_score",
]


# --- top_activations ---------------------------------------------------------------------------

def _planted_grid(n_windows: int, n_pos: int, planted: list[tuple[int, int, float]],
                  seed: int) -> torch.Tensor:
    """Small positive noise on 40 % of the cells (like a sparse latent), zeros elsewhere, and
    the ``planted`` values, all larger than the noise."""
    g = torch.Generator().manual_seed(seed)
    acts = torch.rand(n_windows, n_pos, generator=g) * 0.5
    acts = acts * (torch.rand(n_windows, n_pos, generator=g) < 0.4)
    for w, p, v in planted:
        acts[w, p] = v
    return acts


def _pairs(t: torch.Tensor) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in t.tolist()]


def check_top_activations(fn: Callable) -> None:
    """``fn(acts, k)`` is the (window, position) of the k largest entries, largest first."""
    cases = [
        # 5 windows of 9 positions: the largest in the last column, the two next in window 1,
        # a tie (6.0) between windows 0 and 3.
        (5, 9, [(2, 8, 9.0), (1, 2, 8.0), (1, 6, 7.0), (0, 4, 6.0), (3, 4, 6.0), (4, 0, 5.0)], 5),
        # 11 windows of 4 positions (taller than wide), only part of the planted values asked for.
        (11, 4, [(10, 3, 9.5), (7, 1, 8.5), (7, 3, 8.0), (0, 3, 7.5), (5, 0, 7.0), (2, 2, 6.5)], 4),
    ]
    for n_windows, n_pos, planted, k in cases:
        acts = _planted_grid(n_windows, n_pos, planted, seed=n_windows)
        what = f"(a [{n_windows}, {n_pos}] grid with planted maxima, k = {k})"
        out = call(fn, acts.clone(), k, what=what)
        out = expect_tensor(out, f"top_activations on a [{n_windows}, {n_pos}] grid", shape=(k, 2),
                            dims="k, (window, position)")
        if out.is_floating_point() or out.dtype == torch.bool:
            raise CheckFailed(f"top_activations returned a {out.dtype} tensor; return integer indices "
                              "(window, position), e.g. a long tensor.")
        got = _pairs(out)
        wanted = planted[:k]
        flat = [w * n_pos + p for w, p, _ in wanted]
        wrong_width = [divmod(f, n_windows) for f in flat]
        if sorted(got) == sorted(wrong_width) and sorted(got) != sorted((w, p) for w, p, _ in wanted):
            raise CheckFailed(
                f"on a [{n_windows}, {n_pos}] grid you unravelled the flat index with the wrong width: "
                f"{got} is what divmod(index, n_windows) gives. In a flattened [window, pos] tensor, "
                "index = window * n_pos + pos, so window, pos = divmod(index, n_pos) (or use "
                "torch.unravel_index(index, acts.shape)).")
        if sorted(got) == sorted((p, w) for w, p, _ in wanted):
            raise CheckFailed(f"your pairs are (position, window): {got}. Return (window, position), "
                              "the window first, as acts is indexed.")
        bad = [(w, p) for w, p in got if not (0 <= w < n_windows and 0 <= p < n_pos)]
        if bad:
            raise CheckFailed(f"top_activations returned {bad}, outside a [{n_windows}, {n_pos}] grid. The window "
                              "must be in [0, n_windows) and the position in [0, n_pos).")
        if len(set(got)) < k:
            raise CheckFailed(f"top_activations returned the same (window, position) twice: {got}. The k largest "
                              "are k different cells of the grid.")
        values = torch.tensor([float(acts[w, p]) for w, p in got])
        top = torch.tensor([v for _, _, v in wanted])
        smallest = acts.flatten().sort().values[:k]
        if torch.allclose(values.sort().values, smallest):
            raise CheckFailed(f"top_activations returned the {k} *smallest* activations (values "
                              f"{values.tolist()}); we want the largest: topk, or sort with descending=True.")
        if torch.allclose(values, top.flip(0)) and not torch.allclose(top, top.flip(0)):
            raise CheckFailed(f"you return the right cells in ascending order (values {values.tolist()}): "
                              "put the largest activation first.")
        per_window_max = sorted(acts.max(1).values.tolist(), reverse=True)[:k]
        if torch.allclose(values, torch.tensor(per_window_max)) and not torch.allclose(values, top):
            raise CheckFailed(
                f"you return at most one position per window (values {values.tolist()}). Two of the largest "
                "activations here lie in the same window: rank all (window, position) cells together, e.g. "
                "topk on acts.flatten().")
        if not torch.allclose(values, top):
            raise CheckFailed(
                f"the activations at the cells you returned are {values.tolist()}; the {k} largest, largest first, "
                f"are {top.tolist()} (at {[(w, p) for w, p, _ in wanted]}; two cells may tie, in either order).")
    passed("top_activations finds the largest activations across windows, largest first")


# --- latent_logit_effect -------------------------------------------------------------------------

def _fake_sae(d_in: int, d_sae: int, seed: int):
    """A TopKSAE whose weights are random and unrelated to each other: the encoder columns are
    not the decoder rows, and the decoder bias is large."""
    from interpbook.zoo.gpt_mini_sae import TopKSAE

    g = torch.Generator().manual_seed(seed)
    sae = TopKSAE(d_in, d_sae, k=2, seed=seed)
    with torch.no_grad():
        W_dec = torch.randn(d_sae, d_in, generator=g)
        sae.W_dec.copy_(W_dec / W_dec.norm(dim=-1, keepdim=True))
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=g))
        sae.b_enc.copy_(torch.randn(d_sae, generator=g))
        sae.b_dec.copy_(3.0 * torch.randn(d_in, generator=g))
    return sae.eval()


def check_latent_logit_effect(fn: Callable) -> None:
    """``fn(sae, W_U, latent)`` is W_dec[latent] @ W_U, shape [d_vocab]."""
    # Square first (d_in = d_sae = d_vocab), so that transposes and wrong axes run without a
    # shape error and must be caught by their values; then every size different.
    for d_in, d_sae, d_vocab, latent in ((6, 6, 6, 4), (5, 8, 7, 6)):
        sae = _fake_sae(d_in, d_sae, seed=d_vocab)
        g = torch.Generator().manual_seed(100 + d_vocab)
        W_U = torch.randn(d_in, d_vocab, generator=g)
        what = f"(a hand-made SAE with d_in {d_in}, d_sae {d_sae}; W_U of shape [{d_in}, {d_vocab}]; latent {latent})"
        with torch.no_grad():
            out = call(fn, sae, W_U.clone(), latent, what=what)
        out = expect_tensor(out, "the latent's logit effect", shape=(d_vocab,), dims="d_vocab", floating=True)
        out = out.detach().float().cpu()
        W_dec, W_enc, b_dec = sae.W_dec.detach(), sae.W_enc.detach(), sae.b_dec.detach()
        expected = W_dec[latent] @ W_U
        if torch.allclose(out, W_enc[:, latent] @ W_U, atol=1e-4):
            raise CheckFailed(
                "you used the encoder column W_enc[:, latent]. The encoder says when the latent *fires*; what "
                "the latent *writes* into the residual stream is its decoder row, W_dec[latent], and that is "
                "what the unembedding reads.")
        if torch.allclose(out, (W_dec[latent] + b_dec) @ W_U, atol=1e-4):
            raise CheckFailed(
                "you added the decoder bias b_dec. It is added to every reconstruction whatever the latents "
                "do, so it is not part of one latent's effect: use W_dec[latent] @ W_U alone.")
        if d_in == d_vocab:
            if torch.allclose(out, W_U @ W_dec[latent], atol=1e-4):
                raise CheckFailed(
                    "you computed W_U @ W_dec[latent], which pairs the latent's direction with the rows of W_U. "
                    "W_U is [d_model, d_vocab]: a token's logit is the dot product with its *column*, so the "
                    "effect on every token is W_dec[latent] @ W_U.")
            if torch.allclose(out, W_dec[:, latent] @ W_U, atol=1e-4):
                raise CheckFailed(
                    "you took a column of W_dec. W_dec is [d_sae, d_model]: the latent's direction in the "
                    "residual stream is the row W_dec[latent].")
        if torch.allclose(out, -expected, atol=1e-4):
            raise CheckFailed("your logit effect has the wrong sign: a unit of the latent adds W_dec[latent] to "
                              "the residual stream, which adds W_dec[latent] @ W_U to the logits.")
        expect_close(out, expected, f"the logit effect of latent {latent} {what}", hint=(
            "Take the decoder row W_dec[latent] (what one unit of the latent adds to the residual stream) "
            "and multiply by W_U."))
    passed("latent_logit_effect reads the decoder row through the unembedding")


# --- top_token_rule ------------------------------------------------------------------------------

def _rule_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens [n] and activations [n, 2] built so that each plausible slip picks its own token.

    Latent 0 (min_count = 10): token 3 occurs 12 times at 4.0 (mean 4: the answer); token 5
    twice at 6.0 (mean 6, too rare); token 7 12 times at 1.0 except one 9.0 (the single largest
    activation, mean 1.67); token 1 60 times at 1.0 (mean 1, but the largest total, 60).
    Latent 1: token 2 occurs 12 times at 3.0 (mean 3: the answer); token 8 occurs 20 times,
    firing once at 8.0 (mean 0.4, but 8 where it fires); token 5 twice at 0.5.
    Tokens 0, 4, 6, 9, 11 fill the rest with zeros; token 10 never occurs (a gap in the ids)."""
    tokens = ([3] * 12 + [5] * 2 + [7] * 12 + [1] * 60 + [2] * 12 + [8] * 20 + [0, 4, 6, 9, 11] * 10)
    n = len(tokens)
    acts = torch.zeros(n, 2)
    t = torch.tensor(tokens)
    acts[t == 3, 0] = 4.0
    acts[t == 5, 0] = 6.0
    acts[t == 7, 0] = 1.0
    acts[(t == 7).nonzero()[4], 0] = 9.0
    acts[t == 1, 0] = 1.0
    acts[t == 2, 1] = 3.0
    acts[(t == 8).nonzero()[7], 1] = 8.0
    acts[t == 5, 1] = 0.5
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return t[perm], acts[perm]


def check_top_token_rule(fn: Callable) -> None:
    """``fn(acts, tokens, min_count)`` is, per latent, the token with the highest mean
    activation over its occurrences, among tokens occurring at least ``min_count`` times."""
    tokens, acts = _rule_data()
    what = f"(hand-made: {len(tokens)} tokens, 2 latents)"
    out = call(fn, acts.clone(), tokens.clone(), min_count=10, what=what)
    out = expect_tensor(out, "the rule's token per latent", shape=(2,), dims="latent")
    if out.is_floating_point() or out.dtype == torch.bool:
        raise CheckFailed(f"top_token_rule returned a {out.dtype} tensor; return token ids (an integer tensor).")
    got = [int(x) for x in out.tolist()]
    if got[0] == 7:
        raise CheckFailed(
            "for latent 0 you returned token 7, the token of the single largest activation. One extreme "
            "activation says little about a token's other occurrences (here 7 is at 1.0 everywhere else): "
            "rank tokens by their *mean* activation over all their occurrences.")
    if got[0] == 5:
        raise CheckFailed(
            "for latent 0 you returned token 5, which has the highest mean but occurs only twice (fewer than "
            "min_count = 10). Ignore tokens that occur fewer than min_count times: rare tokens win by chance.")
    if got[0] == 1:
        raise CheckFailed(
            "for latent 0 you returned token 1, the token with the largest *total* activation (it is frequent, "
            "at 1.0 each). Divide each token's total by its number of occurrences.")
    if got[1] == 8:
        raise CheckFailed(
            "for latent 1 you returned token 8, which fires once in 20 occurrences. Average over *all* of a "
            "token's occurrences, zeros included: a rule \"the latent fires on this token\" should hold on "
            "most of them.")
    if got != [3, 2]:
        raise CheckFailed(f"top_token_rule returned tokens {got} for the two latents; expected [3, 2] (token 3 "
                          "has the highest mean activation, 4.0, of latent 0 among tokens seen at least 10 "
                          "times; token 2 has 3.0 for latent 1).")
    # min_count is a parameter, not a constant: with min_count = 2 the rare token 5 qualifies.
    out = call(fn, acts.clone(), tokens.clone(), min_count=2, what=what + " with min_count = 2")
    out = expect_tensor(out, "the rule's token per latent (min_count = 2)", shape=(2,), dims="latent")
    if int(out[0]) != 5:
        raise CheckFailed(f"with min_count = 2, latent 0's rule should be token 5 (mean 6.0, seen twice); you "
                          f"returned {int(out[0])}. Use the min_count argument rather than a fixed number.")
    passed("top_token_rule picks the frequent-enough token with the highest mean activation")


# --- explanation_score ---------------------------------------------------------------------------

def _f1(pred: torch.Tensor, fires: torch.Tensor) -> torch.Tensor:
    tp = (pred & fires).sum(0).float()
    fp = (pred & ~fires).sum(0).float()
    fn = (~pred & fires).sum(0).float()
    return 2 * tp / (2 * tp + fp + fn).clamp_min(1)


def check_explanation_score(fn: Callable) -> None:
    """``fn(predicted, acts)`` is the F1 of ``predicted`` against ``acts > 0``, per latent."""
    n = 20
    acts = torch.zeros(n, 4)
    pred = torch.zeros(n, 4, dtype=torch.bool)
    # Latent 0: fires strongly on 0-2, weakly (0.1, below the mean of 0.76) on 3-4; the rule says
    # 0-2, 3 and 10: TP 4, FP 1, FN 1, TN 14 -> precision 0.8, recall 0.8, F1 0.8. Thresholding
    # at the mean gives TP 3, FP 2, FN 0 -> 0.75.
    acts[[0, 1, 2], 0] = 5.0
    acts[[3, 4], 0] = 0.1
    pred[[0, 1, 2, 3, 10], 0] = True
    # Latent 1: a rule that is exactly right -> 1.
    acts[[5, 6, 7, 8], 1] = torch.tensor([2.0, 0.3, 1.0, 0.05])
    pred[[5, 6, 7, 8], 1] = True
    # Latent 2: never fires, rule never predicts: no positives at all -> 0 by convention.
    # Latent 3: the rule says "always"; the latent fires on 2 of 20 (one of them weakly):
    # TP 2, FP 18 -> precision 0.1, recall 1, F1 2/11.
    acts[[0, 9], 3] = torch.tensor([4.0, 0.2])
    pred[:, 3] = True
    fires = acts > 0
    expected = _f1(pred, fires)
    assert torch.allclose(expected, torch.tensor([0.8, 1.0, 0.0, 2 / 11]))
    # A second, rectangular case with different counts, so precision- or recall-only answers
    # differ from F1: TP 3, FP 1, FN 3 (precision 0.75, recall 0.5, F1 0.6; at the mean, 0.25).
    acts2 = torch.zeros(12, 1)
    pred2 = torch.zeros(12, 1, dtype=torch.bool)
    acts2[[0, 1, 2, 3, 4, 5], 0] = torch.tensor([3.0, 3.0, 3.0, 3.0, 0.2, 0.2])
    pred2[[0, 4, 5, 11], 0] = True
    for p, a in ((pred, acts), (pred2, acts2)):
        what = f"(hand-made predictions and activations, [{a.shape[0]}, {a.shape[1]}])"
        out = call(fn, p.clone(), a.clone(), what=what)
        out = expect_tensor(out, "the explanation scores", shape=(a.shape[1],), dims="latent", floating=True)
        out = out.detach().float().cpu()
        f = a > 0
        if torch.isnan(out).any():
            raise CheckFailed(
                f"explanation_score returned NaN for latents {torch.isnan(out).nonzero().flatten().tolist()}: a "
                "latent that never fires, scored against a rule that never predicts, has no positives at all "
                "(0 / 0). Score it 0, e.g. by clamping the denominator to at least 1.")
        tp = (p & f).sum(0).float()
        precision = tp / p.sum(0).clamp_min(1)
        recall = tp / f.sum(0).clamp_min(1)
        accuracy = (p == f).float().mean(0)
        at_mean = _f1(p, a > a.mean(0))
        right = _f1(p, f)
        for wrong, message in (
            (precision, "that is the precision (of the tokens the rule picks, the fraction where the latent fires). "
                        "A rule that picks one sure token has precision 1 and explains almost nothing: F1 also "
                        "needs the recall, 2 TP / (2 TP + FP + FN)."),
            (recall, "that is the recall (of the latent's firings, the fraction the rule predicts). The rule "
                     "\"always\" has recall 1: F1 also needs the precision, 2 TP / (2 TP + FP + FN)."),
            (accuracy, "that is the accuracy. A latent is silent on almost every token, so a rule that never "
                       "predicts anything scores close to 1: use F1, which ignores the true negatives."),
            (at_mean, "you thresholded the activations at their mean. The latent fires whenever its activation "
                      "is > 0 (a TopK SAE sets every latent outside the top k to exactly 0): weak firings count."),
        ):
            if torch.allclose(out, wrong, atol=1e-4) and not torch.allclose(wrong, right, atol=1e-4):
                raise CheckFailed(f"your scores are {[round(x, 4) for x in out.tolist()]}: {message}")
        expect_close(out, right, f"the explanation scores {what}", hint=(
            "Per latent: TP = predicted and fires (acts > 0), FP = predicted but silent, FN = fires but not "
            "predicted; F1 = 2 TP / (2 TP + FP + FN), sums over the n axis."))
    passed("explanation_score is the F1 of the rule against the latent firing")
