"""The shipped attention-only checkpoints show the phenomena the chapter teaches."""

from __future__ import annotations

import pytest

from interpbook.zoo import checkpoints, load_model, phenomena
from interpbook.zoo.registry import UnknownModelError


@pytest.fixture(scope="module")
def model_2l():
    return load_model("attn-only-2l", device="cpu", profile="default")


@pytest.fixture(scope="module")
def model_1l():
    return load_model("attn-only-1l", device="cpu", profile="default")


def test_2l_has_induction_head_in_layer_1(model_2l):
    scores = phenomena.model_induction_scores(model_2l, seq_len=50, batch=8, seed=0)
    assert scores.shape == (2, model_2l.cfg.n_heads)
    assert scores[1].max() >= 0.7, scores


def test_2l_has_a_previous_token_head_in_layer_0(model_2l):
    # Measured on the shipped model: 0.94 (head 0.2) and 0.83 (head 0.3) on the sample passage.
    scores = phenomena.model_prev_token_scores(model_2l)[0]
    assert scores.max() >= 0.7, scores


def test_2l_previous_token_head_works_deep_into_the_context(model_2l):
    # The failure mode of an earlier recipe: repeated blocks only early in the context, so the
    # layer-0 heads learnt "previous token" for query positions up to ~55 and nothing beyond.
    # Queries 64-95 must be served as well as queries 1-63. (Past ~100 the score drops: a key
    # there is rarely needed by a later induction query within the 128-token context.)
    tokens = model_2l.to_tokens(phenomena.LONG_PASSAGE)[:, :96]
    assert tokens.shape[-1] == 96, tokens.shape
    per_query = phenomena.prev_token_by_query(model_2l, tokens)[0]  # [head, query 1..95]
    best = int(per_query.mean(-1).argmax())
    early, late = per_query[best, :63].mean().item(), per_query[best, 63:].mean().item()
    assert early >= 0.8 and late >= 0.8, (best, early, late)


def test_2l_induction_needs_the_previous_token_head(model_2l):
    import torch

    best = int(phenomena.model_prev_token_scores(model_2l)[0].argmax())
    tokens = phenomena.repeated_tokens(model_2l, seq_len=50, batch=8, seed=0)

    def ablate(z, hook):
        z = z.clone()
        z[:, :, best] = 0.0
        return z

    with torch.no_grad():
        logits = model_2l.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", ablate)])
    logp = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    ablated_second = -logp[:, 51:].mean().item()
    _, clean_second = phenomena.per_half_loss(model_2l, seq_len=50, batch=8, seed=0)
    assert ablated_second > clean_second + 3.0, (clean_second, ablated_second)


def test_2l_predicts_the_repeat(model_2l):
    first, second = phenomena.per_half_loss(model_2l, seq_len=50, batch=8, seed=0)
    assert second < 0.3 * first, (first, second)


def test_1l_cannot_do_induction(model_1l):
    scores = phenomena.model_induction_scores(model_1l, seq_len=50, batch=8, seed=0)
    assert scores.max() < 0.3, scores
    first, second = phenomena.per_half_loss(model_1l, seq_len=50, batch=8, seed=0)
    # One layer can still boost "tokens seen before" (a skip-trigram), so the repeat gets
    # somewhat easier, but nowhere near the 2-layer model's drop.
    assert second > 0.5 * first, (first, second)


def test_2l_speaks_english(model_2l):
    # One 60-token sample is noisy (0.3-0.7 on the shipped model), so judge 24 of them: three
    # prompts, eight fixed seeds. Shipped model: mean 0.55; random subword soup scores near 0.
    from statistics import mean

    from interpbook.zoo.attn_only import SAMPLE_PROMPTS

    samples = [phenomena.sample_text(model_2l, p, n_tokens=60, seed=s) for p in SAMPLE_PROMPTS for s in range(8)]
    fractions = [phenomena.english_word_fraction(t) for t in samples]
    assert mean(fractions) >= 0.5, list(zip(fractions, samples))


def test_training_is_deterministic_and_reproduces_the_shipped_tokenizer(tmp_path):
    # The real recipe, shortened: two runs must give byte-identical weights (the full run was
    # checked the same way against the shipped file), and the tokenizer they train must be the
    # shipped one. In a subprocess, because training pins torch to one deterministic thread.
    import os
    import subprocess
    import sys

    code = (
        "from interpbook.zoo.attn_only import train; "
        "train('attn-only-2l', synthetic_steps=40, text_steps=20, eval_every=10)"
    )
    runs = []
    for run in ("a", "b"):
        env = {**os.environ, "INTERP_BOOK_CHECKPOINTS": str(tmp_path / run)}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(tmp_path / run / "attn-only-2l")
    first, second = ((d / "model.safetensors").read_bytes() for d in runs)
    assert first == second, "two identical training runs produced different weights"
    shipped = checkpoints.tokenizer_path("attn-only-2l").read_text()
    assert (runs[0] / "tokenizer.json").read_text() == shipped, "retrained tokenizer differs from the shipped one"


def test_word_fraction_separates_english_from_noise():
    assert phenomena.english_word_fraction("My lord, I pray you tell me what thou art.") > 0.8
    assert phenomena.english_word_fraction("xq zorblat vrenth klimp aa'q uuth") < 0.2


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownModelError) as err:
        load_model("nope")
    assert "attn-only-2l" in str(err.value) and "attn-only-1l" in str(err.value)


def test_missing_checkpoint_names_path_and_command(tmp_path, monkeypatch):
    # An empty checkpoint root ($INTERP_BOOK_CHECKPOINTS moves saving and loading there).
    monkeypatch.setenv("INTERP_BOOK_CHECKPOINTS", str(tmp_path))
    with pytest.raises(checkpoints.MissingCheckpointError) as err:
        load_model("attn-only-2l", device="cpu", profile="default")
    msg = str(err.value)
    assert str(tmp_path / "attn-only-2l") in msg
    assert "interpbook train attn-only-2l" in msg
