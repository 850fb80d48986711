"""Checks for section 3, "A behaviour and a probe" (book/chapters/pragmatic/03-probes.md).

No check runs a model. ``archaic_pronoun_labels`` gets a hand-typed list of tokens whose labels
are known (with the near misses: capitals, a missing leading space, " thought", " thyself");
``balanced_sample`` a hand-made label vector with unlabelled (-1) tokens and a rare class;
``train_probe`` synthetic data with a planted direction and an offset, so that the boundary is
known by construction and misses the origin; ``precision_recall_f1`` predictions whose true and
false positives are counted by hand; ``probe_by_layer`` planted activations for five "layers"
(noise, noise, the concept, a direction that holds on the training split only, the concept with
known confusers), so each layer's test F1 is known without a second copy of the solution.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from interpbook.checks import CheckFailed, call, expect_tensor, passed

__all__ = [
    "check_archaic_pronoun_labels",
    "check_balanced_sample",
    "check_train_probe",
    "check_precision_recall_f1",
    "check_probe_by_layer",
]


# --- archaic_pronoun_labels -------------------------------------------------------------------

# (token, label): the four words in any case, with or without the leading space of the BPE,
# and the near misses that a substring or prefix test would catch.
_PRONOUN_CASES = [
    (" thou", 1), ("Thou", 1), (" thee", 1), (" thy", 1), ("Thy", 1), (" thine", 1),
    (" THEE", 1), (" Thine", 1), ("thou", 1),
    (" thought", 0), (" thyself", 0), (" though", 0), (" they", 0), (" the", 0), (" thin", 0),
    (" you", 0), (" mine", 0), ("\n", 0), (",", 0), (" thousand", 0), (" th", 0), ("Those", 0),
]


def check_archaic_pronoun_labels(fn: Callable) -> None:
    """``fn(str_tokens)`` is 1 on the tokens that are, whole, thou/thee/thy/thine (any case,
    a leading space ignored), 0 elsewhere."""
    tokens = [t for t, _ in _PRONOUN_CASES]
    expected = torch.tensor([y for _, y in _PRONOUN_CASES])
    out = call(fn, list(tokens), what="(a hand-typed list of 22 string tokens)")
    out = expect_tensor(out, "the labels", shape=(len(tokens),), dims="pos")
    if out.is_floating_point() or out.dtype == torch.bool:
        raise CheckFailed(f"the labels have dtype {out.dtype}; return an integer tensor (torch.long) of 0s and 1s, "
                          "so that the page can mark the BOS column -1 like the other concepts.")
    out = out.cpu().long()
    wrong = [(t, int(o), int(e)) for t, o, e in zip(tokens, out, expected) if o != e]
    if not wrong:
        passed("archaic_pronoun_labels labels whole tokens, in any case, with or without the space")
        return
    missed = {t for t, o, e in wrong if e == 1}
    extra = {t for t, o, e in wrong if e == 0}
    shown = ", ".join(f"{t!r}: {o} (expected {e})" for t, o, e in wrong[:6])
    if missed and missed <= {"Thou", "Thy", " THEE", " Thine"}:
        raise CheckFailed(f"you missed capitalised pronouns ({shown}). The comparison is case-sensitive: a speech "
                          "often starts with 'Thou'. Lower-case the token before comparing.")
    if extra & {" thought", " thyself", " though", " thousand"}:
        raise CheckFailed(
            f"you labelled tokens that only contain or start with a pronoun ({shown}). ' thought' is not "
            "'thou': compare the whole token (after stripping the space and lower-casing) with the four words. "
            "(' thyself' is a different word, the reflexive, and is labelled 0 here.)")
    if missed and all(t.startswith(" ") for t in missed):
        raise CheckFailed(f"you missed every pronoun that starts with a space ({shown}). Byte-pair tokens carry the "
                          "space before the word (' thou'): strip it before comparing.")
    raise CheckFailed(f"wrong labels: {shown}. A token is 1 when, stripped of its leading space and lower-cased, "
                      "it is exactly thou, thee, thy or thine.")


# --- balanced_sample --------------------------------------------------------------------------

def _sample_labels() -> torch.Tensor:
    """60 tokens: 10 positives, 32 negatives, 18 unlabelled, in a fixed shuffled order."""
    labels = torch.tensor([1] * 10 + [0] * 32 + [-1] * 18)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))]


def _draw(fn: Callable, labels: torch.Tensor, n: int, seed: int, global_seed: int) -> torch.Tensor:
    state = torch.get_rng_state()
    try:
        torch.manual_seed(global_seed)  # a generator seeded by `seed` must not care
        out = call(fn, labels.clone(), n, seed, what=f"(60 labels: 10 ones, 32 zeros, 18 unlabelled; "
                                                       f"n_per_class={n}, seed={seed})")
    finally:
        torch.set_rng_state(state)
    out = expect_tensor(out, f"the sample (n_per_class={n})", shape=(2 * n,), dims="2*n_per_class")
    if out.is_floating_point() or out.dtype == torch.bool:
        raise CheckFailed(f"the sample has dtype {out.dtype}; return integer indices (torch.long) into `labels`.")
    out = out.cpu().long()
    if out.min() < 0 or out.max() >= len(labels):
        raise CheckFailed(f"the sample holds {out.min().item()}..{out.max().item()}; it should hold indices into "
                          f"`labels` (0..{len(labels) - 1}), not labels or positions in a filtered copy.")
    return out


def check_balanced_sample(fn: Callable) -> None:
    """``fn(labels, n_per_class, seed)``: indices of n_per_class 0s and n_per_class 1s, never a -1,
    without replacement where a class is large enough, reproducible from ``seed`` alone."""
    labels = _sample_labels()
    pos, neg = (labels == 1).nonzero().flatten(), (labels == 0).nonzero().flatten()
    out = _draw(fn, labels, 8, seed=0, global_seed=1)
    picked = labels[out]
    if (picked == -1).any():
        raise CheckFailed(f"the sample contains {(picked == -1).sum().item()} unlabelled tokens (label -1). They are "
                          "neither in nor out of the concept: looks like you took `labels != 1` as the negatives. "
                          "Draw the negatives from `labels == 0` only.")
    n1, n0 = (picked == 1).sum().item(), (picked == 0).sum().item()
    if n1 != 8 or n0 != 8:
        raise CheckFailed(f"the sample has {n1} positives and {n0} negatives; a balanced sample with n_per_class=8 "
                          "has exactly 8 of each. Draw each class separately, then concatenate.")
    if len(set(out.tolist())) != len(out):
        raise CheckFailed(
            "the sample repeats tokens although both classes have more than 8 (10 positives, 32 negatives): "
            "sampling with replacement duplicates training points for no reason. Use torch.randperm(..., "
            "generator=g)[:n_per_class] on each class.")
    again = _draw(fn, labels, 8, seed=0, global_seed=2)
    if not torch.equal(torch.sort(out).values, torch.sort(again).values):
        raise CheckFailed("two calls with the same seed gave different samples (the global torch seed differed "
                          "between them). Draw with `g = torch.Generator().manual_seed(seed)` and pass "
                          "`generator=g`, so the sample depends on `seed` alone.")
    seen: set[int] = set()
    for seed in range(1, 13):
        s = _draw(fn, labels, 8, seed=seed, global_seed=seed)
        seen |= set(s.tolist())
    if len(seen & set(neg.tolist())) < 20 or torch.equal(torch.sort(s).values, torch.sort(out).values):
        raise CheckFailed(f"over 12 seeds the sample used only {len(seen & set(neg.tolist()))} of the 32 negatives; "
                          "draw each class at random (a random permutation), not its first n_per_class tokens.")
    # A rare class: 15 per class, but only 10 positives.
    big = _draw(fn, labels, 15, seed=3, global_seed=3)
    picked = labels[big]
    if (picked == 1).sum() != 15 or (picked == 0).sum() != 15:
        raise CheckFailed(f"with n_per_class=15 (only 10 positives exist) the sample has {(picked == 1).sum().item()} "
                          f"positives and {(picked == 0).sum().item()} negatives; it should still have 15 of each: "
                          "take every positive once, then draw the other 5 with replacement.")
    if not set(pos.tolist()) <= set(big.tolist()):
        raise CheckFailed("with n_per_class=15 and only 10 positives, some positives are missing from the sample. "
                          "Take each of them once, and only draw the remainder (5) at random with replacement.")
    negs = big[picked == 0].tolist()
    if len(set(negs)) != len(negs):
        raise CheckFailed("with n_per_class=15 the negatives repeat, although 32 exist: draw with replacement only "
                          "for a class with fewer than n_per_class tokens.")
    passed("balanced_sample draws equal classes, never a -1, reproducibly")


# --- train_probe ------------------------------------------------------------------------------

def _planted(n: int, g: torch.Generator, u: torch.Tensor, scales: torch.Tensor, offset: float):
    """Gaussian features (one scale per feature) shifted by ``offset`` along the unit vector u;
    the label is 1 beyond the mean along u, so the boundary is u . x = offset: normal to u,
    ``offset`` away from the origin."""
    X = torch.randn(n, len(u), generator=g) * scales + offset * u
    y = (X @ u > offset).long()
    return X, y


def check_train_probe(fn: Callable) -> None:
    """``fn(X, y)`` returns ``(w, b)``: a logistic-regression probe whose logit is ``X @ w + b``."""
    g = torch.Generator().manual_seed(0)
    d = 24
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    scales = torch.linspace(0.5, 3.0, d)  # features on different scales, like a residual stream
    offset = 6.0
    X, y = _planted(600, g, u, scales, offset)
    Xt, yt = _planted(4000, g, u, scales, offset)
    try:
        with torch.no_grad():  # the page turns gradients off globally
            out = call(fn, X.clone(), y.clone(), what=(
                "(600 synthetic points in 24 dimensions, labels 0/1 as torch.long, called with gradients "
                "globally disabled, as on the page)"))
    except CheckFailed as e:
        if "grad" in str(e):
            raise CheckFailed(
                f"{e}\nThe page runs with torch.set_grad_enabled(False): wrap the training loop in "
                "`with torch.enable_grad():` and create the parameters with requires_grad=True.") from None
        raise
    if not isinstance(out, tuple) or len(out) != 2:
        raise CheckFailed(f"train_probe should return a tuple (w, b); got {type(out).__name__}.")
    w, b = out
    w = expect_tensor(w, "the probe's weights w", shape=(d,), dims="d", floating=True).detach().cpu().float()
    try:
        b = float(b)
    except (TypeError, ValueError):
        raise CheckFailed(f"the bias b should be a number (a Python float); got {type(b).__name__}.") from None
    if not torch.isfinite(w).all() or not math.isfinite(b):
        raise CheckFailed("the probe's weights or bias are not finite: the loss diverged. BCE-with-logits expects "
                          "targets 0 and 1 (as floats); a target of -1 has no minimum.")
    logits = Xt @ w + b
    pred = logits > 0
    acc = (pred == yt.bool()).float().mean().item()
    cos = torch.nn.functional.cosine_similarity(w, u, dim=0).item()
    if acc < 0.9:
        frac_pos = pred.float().mean().item()
        if b == 0.0:
            raise CheckFailed(
                f"held-out accuracy {acc:.1%} and the bias is exactly 0. The planted boundary is u . x = {offset:g}, "
                "which does not pass through the origin: a probe without a bias cannot draw it. Train a bias b "
                "with w, and return it.")
        std_logits = ((Xt - X.mean(0)) / X.std(0)) @ w + b
        if ((std_logits > 0) == yt.bool()).float().mean() > 0.9:
            raise CheckFailed(
                f"held-out accuracy {acc:.1%} on the raw features, but over 90% once the test features are "
                "standardised with the training mean and standard deviation: you returned the probe of the "
                "standardised features. Fold them back: w_raw = w / std, b_raw = b - (w * mean / std).sum().")
        neg_mean, pos_mean = logits[yt == 0].mean().item(), logits[yt == 1].mean().item()
        recall = pred[yt == 1].float().mean().item()
        false_pos = pred[yt == 0].float().mean().item()
        if frac_pos < 0.03 or (frac_pos < 0.4 and neg_mean < -8 and pos_mean < 0):
            raise CheckFailed(
                f"held-out accuracy {acc:.1%}; the probe calls {frac_pos:.0%} of the points positive, and its logits "
                f"average {neg_mean:.1f} on negatives and {pos_mean:.1f} on positives. Did you give BCE targets in "
                "{-1, +1} (2 * y - 1)? binary_cross_entropy_with_logits expects 0 and 1, and with a target of -1 "
                "the loss has no minimum: pass y.float().")
        if -0.5 < neg_mean < 0.5 and 0.5 < pos_mean < 1.5:
            raise CheckFailed(
                f"held-out accuracy {acc:.1%}; your 'logits' average {neg_mean:.2f} on negatives and {pos_mean:.2f} on "
                "positives, as if X @ w + b predicted the label itself (a regression on 0/1 with MSE). The probe's "
                "output is a logit, thresholded at 0: train it with binary_cross_entropy_with_logits.")
        if frac_pos > 0.97 or (recall > 0.99 and false_pos > 0.3):
            raise CheckFailed(
                f"held-out accuracy {acc:.1%}: the probe finds {recall:.0%} of the positives but also calls "
                f"{false_pos:.0%} of the negatives positive, as if the negatives never pushed back. If you used the "
                "loss log(1 + exp(-y z)), it expects y in {-1, +1}: with y in {0, 1} every negative has y z = 0 "
                "and contributes no gradient. Use F.binary_cross_entropy_with_logits(z, y.float()).")
        raise CheckFailed(
            f"held-out accuracy of X @ w + b > 0 is {acc:.1%}; a logistic probe gets over 90% on this planted data, "
            f"whose features have different scales and sit {offset:g} units from the origin. Without standardising, "
            "300 Adam steps at lr 0.01 move b by about 3 at most and do not converge: standardise the features "
            "inside (subtract the mean, divide by the standard deviation), then fold both back into w and b, so "
            "that the returned probe applies to raw X.")
    if cos < 0.9:
        raise CheckFailed(f"the held-out accuracy is {acc:.1%}, but w has cosine {cos:.2f} with the planted direction "
                          "(expected > 0.9). Return w for the raw features (if you standardised, divide by the "
                          "scale), and train longer or with less weight decay.")
    passed(f"train_probe finds the planted direction (cosine {cos:.2f}) and boundary (held-out accuracy {acc:.1%})")


# --- precision_recall_f1 ----------------------------------------------------------------------

def _prf(fn: Callable, pred: torch.Tensor, y: torch.Tensor, what: str) -> tuple[float, float, float]:
    out = call(fn, pred.clone(), y.clone(), what=what)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed(f"precision_recall_f1 should return a tuple (precision, recall, f1); got {out!r}.")
    try:
        vals = tuple(float(v) for v in out)
    except (TypeError, ValueError):
        raise CheckFailed(f"precision_recall_f1 should return three numbers; got {out!r}.") from None
    if any(math.isnan(v) for v in vals):
        raise CheckFailed(f"got {vals} {what}: a NaN. When a quantity is undefined (no predicted positives for "
                          "precision, no positives for recall) return 0, and F1 = 0 when precision + recall = 0.")
    return vals


def check_precision_recall_f1(fn: Callable) -> None:
    """``fn(pred, y)``: precision, recall and F1 of the positive class, ignoring y == -1."""
    # 6 positives, 6 negatives, 3 unlabelled. TP 3, FN 3, FP 1; two unlabelled tokens predicted positive.
    y = torch.tensor([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, -1, -1, -1])
    pred = torch.tensor([1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0]).bool()
    p, r, f = _prf(fn, pred, y, "(TP 3, FP 1, FN 3, TN 5, and 3 unlabelled tokens, two predicted positive)")
    want = (0.75, 0.5, 0.6)
    close = lambda a, b: abs(a - b) < 1e-6  # noqa: E731
    if close(p, 0.5) and close(r, 0.75):
        raise CheckFailed(f"got precision {p:.3f} and recall {r:.3f}: swapped. Precision is TP / (predicted positives) "
                          "= 3/4; recall is TP / (actual positives) = 3/6.")
    if close(p, 0.5) or (close(r, 0.5) and not close(p, 0.75)):
        raise CheckFailed(f"got precision {p:.3f} (expected 0.75): the two unlabelled tokens (y == -1) predicted "
                          "positive were counted as false positives. Drop y == -1 before counting.")
    if close(f, 8 / 12) or close(f, 8 / 15) or close(f, 10 / 15):
        raise CheckFailed(f"the third value is {f:.3f}, the accuracy, not F1. F1 = 2 p r / (p + r) = 0.6. Accuracy "
                          "misleads on rare concepts: with 3% positives, 'never' scores 97%.")
    for name, got, exp in zip(("precision", "recall", "F1"), (p, r, f), want):
        if not close(got, exp):
            raise CheckFailed(f"{name} is {got:.4f}; expected {exp} (TP 3, FP 1, FN 3; unlabelled tokens ignored).")
    # Nothing predicted positive: precision is undefined -> 0, and so is F1.
    y2 = torch.tensor([0, 0, 1, 0, -1, 0, 0, 0, 0, 0])
    vals = _prf(fn, torch.zeros(10, dtype=torch.bool), y2, "(no token predicted positive)")
    if vals != (0.0, 0.0, 0.0):
        raise CheckFailed(f"with no predicted positives you returned {vals}; expected (0.0, 0.0, 0.0).")
    # No positives at all, two predicted: precision 0, recall undefined -> 0.
    y3 = torch.tensor([0, 0, 0, -1, 0])
    vals = _prf(fn, torch.tensor([1, 0, 1, 1, 0]).bool(), y3, "(no labelled positive at all)")
    if vals != (0.0, 0.0, 0.0):
        raise CheckFailed(f"with no labelled positives you returned {vals}; expected (0.0, 0.0, 0.0).")
    passed("precision_recall_f1 counts only labelled tokens, and returns 0 where a ratio is undefined")


# --- probe_by_layer ---------------------------------------------------------------------------

def _planted_layers(g: torch.Generator, split: str, n: int = 12, pos: int = 40, d: int = 16):
    """Activations [5, n, pos, d] and labels [n, pos] (int8, BOS column and ~10% unlabelled).

    Layer 0 and 1: noise. Layer 2: the concept at +-2.5 along a fixed direction (plus an offset).
    Layer 3: the concept along one direction in "train" and an orthogonal one in "test" (it does
    not transfer). Layer 4: the concept, with the "confusers" (a known ~8% of the negatives) and
    every unlabelled token on the positive side."""
    labels = (torch.rand(n, pos, generator=g) < 0.18).to(torch.int8)
    labels[torch.rand(n, pos, generator=g) < 0.1] = -1
    labels[:, 0] = -1
    confuser = (labels == 0) & (torch.rand(n, pos, generator=g) < 0.08)
    basis = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(11)))[0].T  # fixed
    sign = torch.where(labels == 1, 1.0, -1.0)
    acts = 0.4 * torch.randn(5, n, pos, d, generator=g) + 1.5 * basis[5]  # an offset every layer
    acts[2] += 2.5 * sign[..., None] * basis[0]
    acts[3] += 2.5 * sign[..., None] * basis[1 if split == "train" else 2]
    on_side = torch.where((labels == 1) | confuser | (labels == -1), 1.0, -1.0)
    acts[4] += 2.5 * on_side[..., None] * basis[3]
    return acts, labels, confuser


def check_probe_by_layer(fn: Callable) -> None:
    """``fn(train_acts, train_labels, test_acts, test_labels, n_per_class, seed)`` is the test F1
    of a probe per layer, trained on a balanced sample of train and scored on all of test."""
    g = torch.Generator().manual_seed(5)
    train_acts, train_labels, _ = _planted_layers(g, "train")
    test_acts, test_labels, confuser = _planted_layers(g, "test")
    out = call(fn, train_acts.clone(), train_labels.clone(), test_acts.clone(), test_labels.clone(), 40, 0, what=(
        "(planted activations [5 layers, 12 windows, 40 positions, 16 dims], labels int8 with -1s; "
        "n_per_class=40, seed=0)"))
    if isinstance(out, (list, tuple)):
        out = torch.tensor([float(v) for v in out])
    out = expect_tensor(out, "the F1 per layer", shape=(5,), dims="layer", floating=True).detach().cpu()
    tp = int((test_labels == 1).sum())
    fp = int(confuser.sum())
    f1_layer4 = 2 * tp / (2 * tp + fp)  # every positive found; the confusers are false positives
    shown = ", ".join(f"{v:.2f}" for v in out.tolist())
    if out[3] > 0.8:
        raise CheckFailed(
            f"F1 by layer: [{shown}]. In layer 3 the planted direction in the training split differs from the one "
            "in the test split, so a probe trained on train should fail on test (F1 near chance); yours scores "
            f"{out[3]:.2f}: looks like you trained on the test activations. Train on train, score on test.")
    if out[2] < 0.95:
        raise CheckFailed(f"F1 by layer: [{shown}]. Layer 2 carries the concept cleanly (a probe should score F1 > 0.95 "
                          f"there); yours gets {out[2]:.2f}. Is layer i `train_acts[i]`, and did you flatten "
                          "with `labelled(acts, labels)` so that the activations and labels stay aligned?")
    if out[4] < f1_layer4 - 0.03:
        raise CheckFailed(
            f"F1 by layer: [{shown}]. In layer 4 the unlabelled test tokens sit on the positive side; a correct "
            f"evaluation ignores them and scores {f1_layer4:.2f}, yours {out[4]:.2f}: looks like unlabelled tokens "
            "(-1) were counted as negatives. Keep only labelled tokens (`labelled(acts, labels)`).")
    if out[4] > f1_layer4 + 0.03:
        raise CheckFailed(
            f"F1 by layer: [{shown}]. In layer 4 some negatives look like positives; on the natural test distribution "
            f"(about {tp} positives among {int((test_labels >= 0).sum())} labelled tokens) they cost precision and F1 "
            f"is {f1_layer4:.2f}, yours {out[4]:.2f}: looks like you scored on a balanced sample of the test split. "
            "Balance the training sample only; score on every labelled test token.")
    if int(out.argmax()) != 2 or max(out[0], out[1]) > 0.6:
        raise CheckFailed(f"F1 by layer: [{shown}]. Layers 0 and 1 are pure noise (F1 near chance, below 0.6) and layer 2 "
                          "should win. Train one probe per layer, on that layer's activations.")
    passed(f"probe_by_layer finds the planted layer (F1 by layer: [{shown}])")
