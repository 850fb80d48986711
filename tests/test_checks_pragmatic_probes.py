"""The checks of "A behaviour and a probe" (book/chapters/pragmatic/03-probes.md) fail on the
stubs, pass on the exported solutions, and reject the mistakes a learner would plausibly make,
each written as a named function with a comment naming the slip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from interpbook.checks import CheckFailed
from interpbook.checks.pragmatic import probes as checks
from interpbook.datasets.shakespeare_concepts import labelled
from interpbook.solutions.pragmatic import probes as sol
from interpbook.solutions.pragmatic.probes import balanced_sample, precision_recall_f1, train_probe


@pytest.fixture(autouse=True)
def _no_grad():
    # The page runs with gradients switched off; so do the tests.
    with torch.no_grad():
        yield


def stub(*args, **kwargs):
    raise NotImplementedError


def test_solutions_pass():
    checks.check_archaic_pronoun_labels(sol.archaic_pronoun_labels)
    checks.check_balanced_sample(sol.balanced_sample)
    checks.check_train_probe(sol.train_probe)
    checks.check_precision_recall_f1(sol.precision_recall_f1)
    checks.check_probe_by_layer(sol.probe_by_layer)


@pytest.mark.parametrize("name", checks.__all__)
def test_stubs_fail(name):
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        getattr(checks, name)(stub)


# --- archaic_pronoun_labels -------------------------------------------------------------------

PRONOUNS = ("thou", "thee", "thy", "thine")


def labels_case_sensitive(str_tokens):
    # Mistake: compares without lower-casing, so "Thou" at the start of a speech is missed.
    return torch.tensor([int(t.strip() in PRONOUNS) for t in str_tokens])


def labels_substring(str_tokens):
    # Mistake: a substring test, so " thought" contains "thou" and " thyself" contains "thy".
    return torch.tensor([int(any(p in t.lower() for p in PRONOUNS)) for t in str_tokens])


def labels_no_strip(str_tokens):
    # Mistake: forgets the leading space that byte-pair tokens carry (" thou").
    return torch.tensor([int(t.lower() in PRONOUNS) for t in str_tokens])


def labels_as_bool(str_tokens):
    # Mistake: returns a boolean tensor, which cannot hold the -1 of the BOS column.
    return torch.tensor([t.strip().lower() in PRONOUNS for t in str_tokens])


@pytest.mark.parametrize("wrong, message", [
    (labels_case_sensitive, r"case-sensitive"),
    (labels_substring, r"only contain or start with a pronoun.*' thought' is not"),
    (labels_no_strip, r"leading space|starts with a space"),
    (labels_as_bool, r"dtype torch.bool.*integer"),
])
def test_archaic_pronoun_labels_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_archaic_pronoun_labels(wrong)


# --- balanced_sample --------------------------------------------------------------------------

def sample_unlabelled_as_negative(labels, n_per_class, seed):
    # Mistake: takes `labels != 1` as the negatives, so unlabelled (-1) tokens get in.
    g = torch.Generator().manual_seed(seed)
    pos, neg = (labels == 1).nonzero().flatten(), (labels != 1).nonzero().flatten()
    return torch.cat([pos[torch.randperm(len(pos), generator=g)[:n_per_class]],
                      neg[torch.randperm(len(neg), generator=g)[:n_per_class]]])


def sample_with_replacement(labels, n_per_class, seed):
    # Mistake: draws with replacement even when a class has plenty of tokens (duplicates).
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in (1, 0):
        idx = (labels == c).nonzero().flatten()
        out.append(idx[torch.randint(len(idx), (n_per_class,), generator=g)])
    return torch.cat(out)


def sample_unbalanced(labels, n_per_class, seed):
    # Mistake: a random sample of the labelled tokens, which keeps the natural imbalance.
    g = torch.Generator().manual_seed(seed)
    idx = (labels != -1).nonzero().flatten()
    return idx[torch.randperm(len(idx), generator=g)[: 2 * n_per_class]]


def sample_global_rng(labels, n_per_class, seed):
    # Mistake: ignores `seed` and uses the global random state.
    out = []
    for c in (1, 0):
        idx = (labels == c).nonzero().flatten()
        out.append(idx[torch.randperm(len(idx))[:n_per_class]])
    return torch.cat(out)


def sample_first_tokens(labels, n_per_class, seed):
    # Mistake: takes the first n_per_class tokens of each class: not a random sample.
    return torch.cat([(labels == c).nonzero().flatten()[:n_per_class] for c in (1, 0)])


def sample_rare_class_short(labels, n_per_class, seed):
    # Mistake: for a class with too few tokens, returns what there is (an unbalanced sample).
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in (1, 0):
        idx = (labels == c).nonzero().flatten()
        out.append(idx[torch.randperm(len(idx), generator=g)[:n_per_class]])
    return torch.cat(out)


@pytest.mark.parametrize("wrong, message", [
    (sample_unlabelled_as_negative, r"unlabelled tokens \(label -1\)"),
    (sample_with_replacement, r"repeats tokens.*with replacement"),
    (sample_unbalanced, r"a balanced sample with n_per_class=8 has exactly 8 of each"),
    (sample_global_rng, r"same seed gave different samples.*torch.Generator"),
    (sample_first_tokens, r"draw each class at random"),
    (sample_rare_class_short, r"shape \[25\]; expected \[30\]"),
])
def test_balanced_sample_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_balanced_sample(wrong)


# --- train_probe ------------------------------------------------------------------------------

def _adam(params, loss_fn, steps, lr, weight_decay=0.0):
    with torch.enable_grad():
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            opt.zero_grad()
            loss_fn().backward()
            opt.step()


def probe_without_bias(X, y, steps=300, lr=0.01, weight_decay=1e-3):
    # Mistake: no bias term, so the boundary must pass through the origin.
    mu, sigma = X.mean(0), X.std(0)
    w = torch.zeros(X.shape[1], requires_grad=True)
    _adam([w], lambda: F.binary_cross_entropy_with_logits(((X - mu) / sigma) @ w, y.float()), steps, lr)
    return w.detach() / sigma, 0.0


def probe_mse(X, y, steps=300, lr=0.01, weight_decay=1e-3):
    # Mistake: regresses the 0/1 label with MSE (no sigmoid), then is read as a logit.
    mu, sigma = X.mean(0), X.std(0)
    Z = (X - mu) / sigma
    w, b = torch.zeros(X.shape[1], requires_grad=True), torch.zeros((), requires_grad=True)
    _adam([w, b], lambda: ((Z @ w + b - y.float()) ** 2).mean(), steps, lr)
    w = w.detach()
    return w / sigma, (b.detach() - (w * mu / sigma).sum()).item()


def probe_margin_loss_on_01(X, y, steps=300, lr=0.01, weight_decay=1e-3):
    # Mistake: the textbook loss log(1 + exp(-y z)) assumes y in {-1, +1}; here y is 0/1.
    mu, sigma = X.mean(0), X.std(0)
    Z = (X - mu) / sigma
    w, b = torch.zeros(X.shape[1], requires_grad=True), torch.zeros((), requires_grad=True)
    _adam([w, b], lambda: F.softplus(-y.float() * (Z @ w + b)).mean(), steps, lr)
    w = w.detach()
    return w / sigma, (b.detach() - (w * mu / sigma).sum()).item()


def probe_bce_on_pm1(X, y, steps=300, lr=0.01, weight_decay=1e-3):
    # Mistake: converts the labels to {-1, +1} and feeds them to BCE, which expects 0 and 1.
    w, b = torch.zeros(X.shape[1], requires_grad=True), torch.zeros((), requires_grad=True)
    _adam([w, b], lambda: F.binary_cross_entropy_with_logits(X @ w + b, 2 * y.float() - 1), steps, lr,
          weight_decay)
    return w.detach(), b.item()


def probe_standardised_not_folded(X, y, steps=300, lr=0.01, weight_decay=1e-3):
    # Mistake: trains on standardised features and returns that probe as if it applied to raw X.
    mu, sigma = X.mean(0), X.std(0)
    Z = (X - mu) / sigma
    w, b = torch.zeros(X.shape[1], requires_grad=True), torch.zeros((), requires_grad=True)
    _adam([w, b], lambda: F.binary_cross_entropy_with_logits(Z @ w + b, y.float()), steps, lr)
    return w.detach(), b.item()


def probe_raw_features(X, y, steps=300, lr=0.01, weight_decay=1e-3):
    # Mistake: no standardisation: on features far from the origin, 300 steps do not converge.
    w, b = torch.zeros(X.shape[1], requires_grad=True), torch.zeros((), requires_grad=True)
    _adam([w, b], lambda: F.binary_cross_entropy_with_logits(X @ w + b, y.float()), steps, lr, weight_decay)
    return w.detach(), b.item()


def probe_no_enable_grad(X, y, steps=300, lr=0.01, weight_decay=1e-3):
    # Mistake: trains without `torch.enable_grad()`, but the page switched gradients off.
    w, b = torch.zeros(X.shape[1], requires_grad=True), torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(X @ w + b, y.float()).backward()
        opt.step()
    return w.detach(), b.item()


@pytest.mark.parametrize("wrong, message", [
    (probe_without_bias, r"bias is exactly 0.*does not pass through the origin"),
    (probe_mse, r"predicted the label itself.*MSE"),
    (probe_margin_loss_on_01, r"negatives never pushed back.*log\(1 \+ exp\(-y z\)\)"),
    (probe_bce_on_pm1, r"BCE targets in \{-1, \+1\}"),
    (probe_standardised_not_folded, r"probe of the standardised features"),
    (probe_raw_features, r"Without standardising.*do not converge"),
    (probe_no_enable_grad, r"torch.enable_grad"),
])
def test_train_probe_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_train_probe(wrong)


# --- precision_recall_f1 ----------------------------------------------------------------------

def prf_swapped(pred, y):
    # Mistake: precision and recall the wrong way round.
    keep = y != -1
    pred, pos = pred[keep], y[keep] == 1
    tp = (pred & pos).sum().item()
    recall, precision = tp / max(pred.sum().item(), 1), tp / max(pos.sum().item(), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def prf_unlabelled_as_negative(pred, y):
    # Mistake: treats y == -1 as a negative instead of ignoring it.
    pos = y == 1
    tp = (pred & pos).sum().item()
    precision, recall = tp / max(pred.sum().item(), 1), tp / max(pos.sum().item(), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def prf_accuracy(pred, y):
    # Mistake: returns the accuracy as the third number.
    keep = y != -1
    pred, pos = pred[keep], y[keep] == 1
    tp = (pred & pos).sum().item()
    precision, recall = tp / max(pred.sum().item(), 1), tp / max(pos.sum().item(), 1)
    return precision, recall, (pred == pos).float().mean().item()


def prf_nan_when_undefined(pred, y):
    # Mistake: divides by zero when nothing is predicted positive (precision is NaN).
    keep = y != -1
    pred, pos = pred[keep].float(), (y[keep] == 1).float()
    tp = (pred * pos).sum()
    precision, recall = (tp / pred.sum()).item(), (tp / pos.sum()).item()
    return precision, recall, 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("wrong, message", [
    (prf_swapped, r"swapped"),
    (prf_unlabelled_as_negative, r"unlabelled tokens \(y == -1\)"),
    (prf_accuracy, r"the accuracy, not F1"),
    (prf_nan_when_undefined, r"NaN.*return 0"),
])
def test_precision_recall_f1_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_precision_recall_f1(wrong)


# --- probe_by_layer ---------------------------------------------------------------------------

def by_layer_balanced_test(train_acts, train_labels, test_acts, test_labels, n_per_class=1000, seed=0):
    # Mistake: also scores on a balanced sample of the test split, hiding the false positives.
    out = []
    for layer in range(len(train_acts)):
        X, y = labelled(train_acts[layer], train_labels)
        idx = balanced_sample(y, n_per_class, seed)
        w, b = train_probe(X[idx], y[idx])
        Xt, yt = labelled(test_acts[layer], test_labels)
        n_test = int(min((yt == 1).sum(), (yt == 0).sum()))
        jdx = balanced_sample(yt, n_test, seed)
        out.append(precision_recall_f1(Xt[jdx] @ w + b > 0, yt[jdx])[2])
    return torch.tensor(out)


def by_layer_unlabelled_as_negative(train_acts, train_labels, test_acts, test_labels, n_per_class=1000, seed=0):
    # Mistake: turns the labels into 0/1 with `labels == 1`, so unlabelled tokens become negatives.
    out = []
    for layer in range(len(train_acts)):
        d = train_acts.shape[-1]
        X, y = train_acts[layer].reshape(-1, d), (train_labels == 1).long().flatten()
        idx = balanced_sample(y, n_per_class, seed)
        w, b = train_probe(X[idx], y[idx])
        Xt, yt = test_acts[layer].reshape(-1, d), (test_labels == 1).long().flatten()
        out.append(precision_recall_f1(Xt @ w + b > 0, yt)[2])
    return torch.tensor(out)


def by_layer_trained_on_test(train_acts, train_labels, test_acts, test_labels, n_per_class=1000, seed=0):
    # Mistake: fits the probe on the test split (the one it is scored on).
    out = []
    for layer in range(len(test_acts)):
        Xt, yt = labelled(test_acts[layer], test_labels)
        idx = balanced_sample(yt, n_per_class, seed)
        w, b = train_probe(Xt[idx], yt[idx])
        out.append(precision_recall_f1(Xt @ w + b > 0, yt)[2])
    return torch.tensor(out)


def by_layer_one_layer_only(train_acts, train_labels, test_acts, test_labels, n_per_class=1000, seed=0):
    # Mistake: always reads layer 0 (indexes the wrong axis of the stacked activations).
    out = []
    for _ in range(len(train_acts)):
        X, y = labelled(train_acts[0], train_labels)
        idx = balanced_sample(y, n_per_class, seed)
        w, b = train_probe(X[idx], y[idx])
        Xt, yt = labelled(test_acts[0], test_labels)
        out.append(precision_recall_f1(Xt @ w + b > 0, yt)[2])
    return torch.tensor(out)


@pytest.mark.parametrize("wrong, message", [
    (by_layer_balanced_test, r"balanced sample of the test split"),
    (by_layer_unlabelled_as_negative, r"unlabelled tokens \(-1\) were counted as negatives"),
    (by_layer_trained_on_test, r"trained on the test activations"),
    (by_layer_one_layer_only, r"Layer 2 carries the concept"),
])
def test_probe_by_layer_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_probe_by_layer(wrong)
