"""Section 3 ("Training") of the transformer-from-scratch chapter: its checks reject the mistakes
a learner would plausibly make.

Each exercise gets one or more *wrong* answers, written as a learner would write them, with a
one-line comment naming the slip; each test pins that the check rejects it with a message that
points at that slip. The first test runs the exported solutions through the checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from interpbook.checks import CheckFailed
from interpbook.checks.transformer import training as training_checks
from interpbook.solutions.transformer import training as training_sol

# ============================================================================================
# Section 3: Training


def test_training_solutions_pass():
    training_checks.check_make_windows(training_sol.make_windows)
    training_checks.check_lm_loss(training_sol.lm_loss)
    training_checks.check_train_step(training_sol.train_step)
    training_checks.check_evaluate(training_sol.evaluate)
    training_checks.check_lr_at(training_sol.lr_at)


def _bos_column(n, bos, like):
    return torch.full((n, 1), bos, dtype=like.dtype, device=like.device)


def test_make_windows_rejects_overlapping_windows():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: a sliding window with stride 1, so consecutive windows share n_ctx - 2 tokens.
        body = stream.unfold(0, n_ctx - 1, 1)
        return torch.cat([_bos_column(len(body), bos, stream), body], dim=1)

    with pytest.raises(CheckFailed, match=r"the windows overlap"):
        training_checks.check_make_windows(make_windows)


def test_make_windows_rejects_padded_tail():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: rounds the number of windows up and pads the last one instead of dropping it.
        per = n_ctx - 1
        n_windows = math.ceil(len(stream) / per)
        padded = torch.cat([stream, stream.new_zeros(n_windows * per - len(stream))])
        return torch.cat([_bos_column(n_windows, bos, stream), padded.view(n_windows, per)], dim=1)

    with pytest.raises(CheckFailed, match=r"Drop the incomplete tail"):
        training_checks.check_make_windows(make_windows)


def test_make_windows_rejects_bos_on_top_of_n_ctx_tokens():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: n_ctx stream tokens per window and then BOS in front, n_ctx + 1 in all.
        n_windows = len(stream) // n_ctx
        body = stream[: n_windows * n_ctx].view(n_windows, n_ctx)
        return torch.cat([_bos_column(n_windows, bos, stream), body], dim=1)

    with pytest.raises(CheckFailed, match=r"n_ctx = 6 tokens in all, BOS included"):
        training_checks.check_make_windows(make_windows)


def test_make_windows_rejects_missing_bos():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: forgets the BOS token and fills the whole window with stream tokens.
        n_windows = len(stream) // n_ctx
        return stream[: n_windows * n_ctx].view(n_windows, n_ctx)

    with pytest.raises(CheckFailed, match=r"should start with the BOS token 0"):
        training_checks.check_make_windows(make_windows)


def test_make_windows_rejects_hard_coded_bos():
    def make_windows(stream, n_ctx, bos=0):
        # Mistake: always writes token 0, ignoring the bos argument.
        return training_sol.make_windows(stream, n_ctx, 0)

    with pytest.raises(CheckFailed, match=r"Use the bos argument"):
        training_checks.check_make_windows(make_windows)


def test_lm_loss_rejects_unshifted_loss():
    def lm_loss(model, tokens):
        # Mistake: scores the logits at position i against token i itself (no shift).
        logits = model(tokens)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))

    with pytest.raises(CheckFailed, match=r"the logits at position i predict token i \+ 1"):
        training_checks.check_lm_loss(lm_loss)


def test_lm_loss_rejects_shift_the_wrong_way():
    def lm_loss(model, tokens):
        # Mistake: pairs each position's logits with the previous token.
        logits = model(tokens)
        return F.cross_entropy(logits[:, 1:].reshape(-1, logits.shape[-1]), tokens[:, :-1].reshape(-1))

    with pytest.raises(CheckFailed, match=r"You shifted the wrong way"):
        training_checks.check_lm_loss(lm_loss)


def test_lm_loss_rejects_logits_as_log_probs():
    def lm_loss(model, tokens):
        # Mistake: reads the logits as log-probabilities (no log_softmax) and picks the target's.
        logits = model(tokens)
        return -logits[:, :-1].gather(-1, tokens[:, 1:, None]).mean()

    with pytest.raises(CheckFailed, match=r"apply log_softmax first"):
        training_checks.check_lm_loss(lm_loss)


def test_lm_loss_rejects_summed_loss():
    def lm_loss(model, tokens):
        # Mistake: sums the per-token losses instead of averaging them.
        logits = model(tokens)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                               reduction="sum")

    with pytest.raises(CheckFailed, match=r"You summed the per-token losses"):
        training_checks.check_lm_loss(lm_loss)


def test_lm_loss_rejects_detached_loss():
    def lm_loss(model, tokens):
        # Mistake: detaches the loss (e.g. to print it), so backward() has nothing to follow.
        return training_sol.lm_loss(model, tokens).detach()

    with pytest.raises(CheckFailed, match=r"keep the loss in the graph"):
        training_checks.check_lm_loss(lm_loss)


def test_train_step_rejects_missing_zero_grad():
    def train_step(model, optimizer, tokens):
        # Mistake: never clears the gradients, so every backward() adds to the previous ones.
        loss = training_sol.lm_loss(model, tokens)
        loss.backward()
        optimizer.step()
        return loss.item()

    with pytest.raises(CheckFailed, match=r"The gradients were not cleared"):
        training_checks.check_train_step(train_step)


def test_train_step_rejects_zero_grad_after_step():
    def train_step(model, optimizer, tokens):
        # Mistake: clears the gradients after the step, so the first step uses a stale gradient.
        loss = training_sol.lm_loss(model, tokens)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    with pytest.raises(CheckFailed, match=r"cleared them after the step"):
        training_checks.check_train_step(train_step)


def test_train_step_rejects_loss_after_the_step():
    def train_step(model, optimizer, tokens):
        # Mistake: reports the loss recomputed after the update.
        optimizer.zero_grad()
        training_sol.lm_loss(model, tokens).backward()
        optimizer.step()
        with torch.no_grad():
            return training_sol.lm_loss(model, tokens).item()

    with pytest.raises(CheckFailed, match=r"the loss \*after\* the update"):
        training_checks.check_train_step(train_step)


def test_train_step_rejects_tensor_loss():
    def train_step(model, optimizer, tokens):
        # Mistake: returns the loss tensor instead of loss.item().
        optimizer.zero_grad()
        loss = training_sol.lm_loss(model, tokens)
        loss.backward()
        optimizer.step()
        return loss

    with pytest.raises(CheckFailed, match=r"as a Python float \(loss.item\(\)\)"):
        training_checks.check_train_step(train_step)


def test_train_step_rejects_missing_optimizer_step():
    def train_step(model, optimizer, tokens):
        # Mistake: computes the gradients but never steps the optimiser.
        optimizer.zero_grad()
        loss = training_sol.lm_loss(model, tokens)
        loss.backward()
        return loss.item()

    with pytest.raises(CheckFailed, match=r"call optimizer.step\(\)"):
        training_checks.check_train_step(train_step)


def _evaluate(model, windows, batch_size, *, weighted=True, no_grad=True, eval_mode=True, restore=True):
    was_training = model.training
    if eval_mode:
        model.eval()
    means, sizes = [], []
    with torch.set_grad_enabled(not no_grad):
        for start in range(0, len(windows), batch_size):
            batch = windows[start : start + batch_size]
            means.append(training_sol.lm_loss(model, batch).item())
            sizes.append(batch[:, 1:].numel())
    if restore:
        model.train(was_training)
    if weighted:
        return sum(m * s for m, s in zip(means, sizes, strict=True)) / sum(sizes)
    return sum(means) / len(means)


def test_evaluate_rejects_mean_of_batch_means():
    def evaluate(model, windows, batch_size):
        # Mistake: averages the per-batch means, over-weighting the short last batch.
        return _evaluate(model, windows, batch_size, weighted=False)

    with pytest.raises(CheckFailed, match=r"the mean of the per-batch means"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_gradients_enabled():
    def evaluate(model, windows, batch_size):
        # Mistake: forgets torch.no_grad(), building a graph nobody back-propagates.
        return _evaluate(model, windows, batch_size, no_grad=False)

    with pytest.raises(CheckFailed, match=r"wrap the loop in torch.no_grad\(\)"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_training_mode():
    def evaluate(model, windows, batch_size):
        # Mistake: forgets model.eval().
        return _evaluate(model, windows, batch_size, eval_mode=False)

    with pytest.raises(CheckFailed, match=r"call model.eval\(\) first"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_mode_not_restored():
    def evaluate(model, windows, batch_size):
        # Mistake: leaves the model in eval mode afterwards.
        return _evaluate(model, windows, batch_size, restore=False)

    with pytest.raises(CheckFailed, match=r"Restore the mode it was in"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_always_back_to_training():
    def evaluate(model, windows, batch_size):
        # Mistake: always calls model.train() at the end, even for a model that was in eval mode.
        out = _evaluate(model, windows, batch_size, restore=False)
        model.train()
        return out

    with pytest.raises(CheckFailed, match=r"in eval mode before evaluate and in training mode after"):
        training_checks.check_evaluate(evaluate)


def test_evaluate_rejects_one_big_batch():
    def evaluate(model, windows, batch_size):
        # Mistake: ignores batch_size and runs every window at once.
        return _evaluate(model, windows, len(windows))

    with pytest.raises(CheckFailed, match=r"go through the windows batch_size at a time"):
        training_checks.check_evaluate(evaluate)


def test_lr_at_rejects_warmup_from_zero():
    def lr_at(step, max_lr, warmup, total, min_lr_frac=0.1):
        # Mistake: warms up with step / warmup, so step 0 has learning rate 0.
        if step < warmup:
            return max_lr * step / warmup
        return training_sol.lr_at(step, max_lr, warmup, total, min_lr_frac)

    with pytest.raises(CheckFailed, match=r"At step 0 your learning rate is 0"):
        training_checks.check_lr_at(lr_at)


def test_lr_at_rejects_warmup_over_warmup_plus_one():
    def lr_at(step, max_lr, warmup, total, min_lr_frac=0.1):
        # Mistake: divides by warmup + 1, so the warm-up never quite reaches max_lr.
        if step < warmup:
            return max_lr * (step + 1) / (warmup + 1)
        return training_sol.lr_at(step, max_lr, warmup, total, min_lr_frac)

    with pytest.raises(CheckFailed, match=r"reach max_lr at step warmup - 1"):
        training_checks.check_lr_at(lr_at)


def test_lr_at_rejects_decay_to_zero():
    def lr_at(step, max_lr, warmup, total, min_lr_frac=0.1):
        # Mistake: the cosine decays to 0 instead of to the floor min_lr_frac * max_lr.
        if step < warmup:
            return max_lr * (step + 1) / warmup
        return max_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    with pytest.raises(CheckFailed, match=r"end at min_lr = min_lr_frac \* max_lr"):
        training_checks.check_lr_at(lr_at)


def test_lr_at_rejects_cosine_from_step_zero():
    def lr_at(step, max_lr, warmup, total, min_lr_frac=0.1):
        # Mistake: measures the cosine's progress from step 0 instead of from the end of warm-up.
        if step < warmup:
            return max_lr * (step + 1) / warmup
        min_lr = min_lr_frac * max_lr
        return min_lr + (max_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * step / total))

    with pytest.raises(CheckFailed, match=r"measure its progress from the end of the warm-up"):
        training_checks.check_lr_at(lr_at)
