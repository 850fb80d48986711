"""Section 1 of the pragmatic chapter, "Measuring a sparse autoencoder": each check fails on an
unfinished stub, passes on the exported solution, and rejects the mistakes a learner would
plausibly make, with a message that names the slip. None of this needs the shipped SAE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from interpbook.checks import CheckFailed, leftover_hooks
from interpbook.checks.pragmatic import sae_metrics as checks
from interpbook.solutions.pragmatic import sae_metrics as sol
from interpbook.solutions.superposition.beyond_l1 import fraction_variance_unexplained
from interpbook.zoo.gpt_mini_sae import TopKSAE

NAMES = ["latent_frequencies", "loss_recovered", "train_topk_sae", "pca_fvu", "next_token_kl"]


def _stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("name", NAMES)
def test_check_fails_on_stub(name):
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        getattr(checks, f"check_{name}")(_stub)


@pytest.mark.parametrize("name", NAMES)
def test_check_passes_on_solution(name):
    with torch.no_grad():  # as on the page
        getattr(checks, f"check_{name}")(getattr(sol, name))


def test_every_check_is_listed():
    assert sorted(checks.__all__) == sorted(f"check_{n}" for n in NAMES)


# --- latent_frequencies -----------------------------------------------------------------------

def frequencies_mean_activation(f):
    # Mistake: averages the activations themselves instead of whether they fire.
    return f.mean(0)


def frequencies_wrong_axis(f):
    # Mistake: averages over the latents, giving the fraction of latents active on each token.
    return (f > 0).float().mean(1)


def frequencies_counts(f):
    # Mistake: counts the tokens instead of taking the fraction.
    return (f > 0).float().sum(0)


@pytest.mark.parametrize("wrong, message", [
    (frequencies_mean_activation, r"mean activation"),
    (frequencies_wrong_axis, r"averaged over the latent axis"),
    (frequencies_counts, r"how many tokens.*divide"),
])
def test_latent_frequencies_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_latent_frequencies(wrong)


# --- loss_recovered ---------------------------------------------------------------------------

def _loss(model, tokens, fwd_hooks):
    logits = model.run_with_hooks(tokens, fwd_hooks=fwd_hooks)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()


def loss_lost(model, sae, tokens, hook_name):
    # Mistake: returns the fraction of the loss gap that is *lost*, not recovered.
    def splice(act, hook):
        out = act.clone()
        out[:, 1:] = sae(act[:, 1:])
        return out

    def zero(act, hook):
        out = act.clone()
        out[:, 1:] = 0.0
        return out

    clean, spliced, zeroed = (_loss(model, tokens, h) for h in ([], [(hook_name, splice)], [(hook_name, zero)]))
    return (spliced - clean) / (zeroed - clean)


def loss_recovered_bos_too(model, sae, tokens, hook_name):
    # Mistake: replaces the whole activation, BOS included, in both runs.
    clean = _loss(model, tokens, [])
    spliced = _loss(model, tokens, [(hook_name, lambda act, hook: sae(act))])
    zeroed = _loss(model, tokens, [(hook_name, lambda act, hook: torch.zeros_like(act))])
    return (zeroed - spliced) / (zeroed - clean)


def loss_recovered_bos_spliced(model, sae, tokens, hook_name):
    # Mistake: the splice replaces BOS too, while the zero-ablation (copied from the package) keeps it.
    def zero(act, hook):
        out = act.clone()
        out[:, 1:] = 0.0
        return out

    clean = _loss(model, tokens, [])
    spliced = _loss(model, tokens, [(hook_name, lambda act, hook: sae(act))])
    zeroed = _loss(model, tokens, [(hook_name, zero)])
    return (zeroed - spliced) / (zeroed - clean)


def loss_recovered_hooks_left(model, sae, tokens, hook_name):
    # Mistake: attaches the hooks with add_hook and never removes them (the zero hook then also
    # runs after the splice hook, and stays on the model).
    def splice(act, hook):
        out = act.clone()
        out[:, 1:] = sae(act[:, 1:])
        return out

    def zero(act, hook):
        out = act.clone()
        out[:, 1:] = 0.0
        return out

    clean = _loss(model, tokens, [])
    model.add_hook(hook_name, splice)
    spliced = _loss(model, tokens, [])
    model.add_hook(hook_name, zero)
    zeroed = _loss(model, tokens, [])
    return (zeroed - spliced) / (zeroed - clean)


@pytest.mark.parametrize("wrong, message", [
    (loss_lost, r"fraction of the loss \*lost\*"),
    (loss_recovered_bos_too, r"BOS\) is spliced and zero-ablated too"),
    (loss_recovered_bos_spliced, r"BOS\) is spliced too"),
    (loss_recovered_hooks_left, r"hooks were still attached"),
])
def test_loss_recovered_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_loss_recovered(wrong)
    assert not leftover_hooks(checks._gpt_mini())  # the check cleaned up after the learner


# --- train_topk_sae ---------------------------------------------------------------------------

def _trainer(renormalise=True, zero_grad=True, init_b_dec=True, enable_grad=True):
    def train(acts, d_sae, k, steps, batch=1024, lr=1e-3, seed=0):
        sae = TopKSAE(acts.shape[1], d_sae, k, seed=seed)
        if init_b_dec:
            with torch.no_grad():
                sae.b_dec.copy_(acts.mean(0))
        opt = torch.optim.Adam(sae.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        with torch.set_grad_enabled(enable_grad or torch.is_grad_enabled()):
            for _ in range(steps):
                x = acts[torch.randint(len(acts), (batch,), generator=g)]
                loss = fraction_variance_unexplained(x[:, None], sae(x)[:, None]).squeeze()
                if zero_grad:
                    opt.zero_grad()
                loss.backward()
                opt.step()
                if renormalise:
                    with torch.no_grad():
                        sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True)
        return sae

    return train


# Mistake: never renormalises the decoder rows.
train_no_renorm = _trainer(renormalise=False)
# Mistake: forgets opt.zero_grad(), so every step's gradients add up.
train_no_zero_grad = _trainer(zero_grad=False)
# Mistake: leaves b_dec at zero, far from data with a large mean.
train_no_b_dec_init = _trainer(init_b_dec=False)
# Mistake: trains with gradients turned off (the page disables them globally).
train_no_grad = _trainer(enable_grad=False)


@pytest.mark.parametrize("wrong, message", [
    (train_no_renorm, r"decoder rows have norms"),
    (train_no_zero_grad, r"zero_grad"),
    (train_no_b_dec_init, r"Initialise `b_dec`"),
    (train_no_grad, r"enable_grad"),
])
def test_train_topk_sae_rejects(wrong, message):
    with torch.no_grad(), pytest.raises(CheckFailed, match=message):
        checks.check_train_topk_sae(wrong)


# --- pca_fvu ----------------------------------------------------------------------------------

def _fvu(test, recon):
    return fraction_variance_unexplained(test[:, None], recon[:, None]).item()


def pca_uncentred(acts_train, acts_test, k):
    # Mistake: takes the SVD of the raw activations, without centring.
    Vh = torch.linalg.svd(acts_train, full_matrices=False).Vh
    P = Vh[:k].T
    return _fvu(acts_test, acts_test @ P @ P.T)


def pca_smallest(acts_train, acts_test, k):
    # Mistake: eigh sorts eigenvalues in ascending order; takes the first k, the smallest.
    mean = acts_train.mean(0)
    xc = acts_train - mean
    _, vecs = torch.linalg.eigh(xc.T @ xc)
    P = vecs[:, :k]
    return _fvu(acts_test, (acts_test - mean) @ P @ P.T + mean)


def pca_vh_columns(acts_train, acts_test, k):
    # Mistake: takes columns of Vh (Vh is V transposed: the directions are its rows).
    mean = acts_train.mean(0)
    Vh = torch.linalg.svd(acts_train - mean, full_matrices=False).Vh
    P = Vh[:, :k]
    return _fvu(acts_test, (acts_test - mean) @ P @ P.T + mean)


def pca_fit_on_test(acts_train, acts_test, k):
    # Mistake: fits the PCA on the held-out activations it is then scored on.
    mean = acts_test.mean(0)
    Vh = torch.linalg.svd(acts_test - mean, full_matrices=False).Vh
    P = Vh[:k].T
    return _fvu(acts_test, (acts_test - mean) @ P @ P.T + mean)


def pca_test_mean(acts_train, acts_test, k):
    # Mistake: directions from the training set, but the test set centred on its own mean.
    Vh = torch.linalg.svd(acts_train - acts_train.mean(0), full_matrices=False).Vh
    P = Vh[:k].T
    mean = acts_test.mean(0)
    return _fvu(acts_test, (acts_test - mean) @ P @ P.T + mean)


def pca_no_mean_back(acts_train, acts_test, k):
    # Mistake: forgets to add the mean back to the reconstruction.
    mean = acts_train.mean(0)
    Vh = torch.linalg.svd(acts_train - mean, full_matrices=False).Vh
    P = Vh[:k].T
    return _fvu(acts_test, (acts_test - mean) @ P @ P.T)


@pytest.mark.parametrize("wrong, message", [
    (pca_uncentred, r"without subtracting their mean"),
    (pca_smallest, r"\*least\* variance"),
    (pca_vh_columns, r"\*columns\* of Vh"),
    (pca_fit_on_test, r"fitted the PCA on the test"),
    (pca_test_mean, r"centred the test activations on their own mean"),
    (pca_no_mean_back, r"left out the mean"),
])
def test_pca_fvu_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_pca_fvu(wrong)


# --- next_token_kl ----------------------------------------------------------------------------

def kl_reversed(clean_logits, spliced_logits):
    # Mistake: KL(spliced || clean), the arguments the wrong way round.
    lp, lq = clean_logits.log_softmax(-1), spliced_logits.log_softmax(-1)
    return (lq.exp() * (lq - lp)).sum(-1)


def kl_kl_div_swapped(clean_logits, spliced_logits):
    # Mistake: F.kl_div(input, target) computes KL(target || input); passes the clean run as input.
    lp, lq = clean_logits.log_softmax(-1), spliced_logits.log_softmax(-1)
    return F.kl_div(lp, lq, log_target=True, reduction="none").sum(-1)


def kl_log_of_softmax(clean_logits, spliced_logits):
    # Mistake: log of the softmax, which is -inf where float32 rounds a probability to 0.
    p, q = clean_logits.softmax(-1), spliced_logits.softmax(-1)
    return (p * (p.log() - q.log())).sum(-1)


def kl_raw_logits(clean_logits, spliced_logits):
    # Mistake: uses the logits as if they were log-probabilities.
    return (clean_logits.softmax(-1) * (clean_logits - spliced_logits)).sum(-1)


def kl_mean_over_vocab(clean_logits, spliced_logits):
    # Mistake: averages over the vocabulary instead of summing.
    lp, lq = clean_logits.log_softmax(-1), spliced_logits.log_softmax(-1)
    return (lp.exp() * (lp - lq)).mean(-1)


def kl_batchmean(clean_logits, spliced_logits):
    # Mistake: lets F.kl_div reduce to one number.
    return F.kl_div(spliced_logits.log_softmax(-1), clean_logits.log_softmax(-1), log_target=True,
                    reduction="batchmean")


def test_kl_div_the_right_way_passes():
    # F.kl_div with the spliced log-probs as input and the clean ones as target is correct.
    def kl(clean_logits, spliced_logits):
        return F.kl_div(spliced_logits.log_softmax(-1), clean_logits.log_softmax(-1), log_target=True,
                        reduction="none").sum(-1)

    checks.check_next_token_kl(kl)


@pytest.mark.parametrize("wrong, message", [
    (kl_reversed, r"wrong way round"),
    (kl_kl_div_swapped, r"wrong way round"),
    (kl_log_of_softmax, r"inf or nan.*log_softmax"),
    (kl_raw_logits, r"raw logits"),
    (kl_mean_over_vocab, r"averaged over the vocabulary"),
    (kl_batchmean, r"shape \[\]; expected \[2, 3\]"),
])
def test_next_token_kl_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_next_token_kl(wrong)


def test_checks_are_fast():
    import time

    checks._gpt_mini()  # loading the model once is not part of a check's budget
    for name in NAMES:
        start = time.perf_counter()
        with torch.no_grad():
            getattr(checks, f"check_{name}")(getattr(sol, name))
        assert time.perf_counter() - start < 4, name  # 2 s on an idle core; slack for a busy machine
