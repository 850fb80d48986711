"""The shipped balanced-brackets classifier: per-class accuracy on held-out strings, the
tokeniser, and clear errors for input it cannot read."""

from __future__ import annotations

import random

import pytest
import torch

from interpbook.datasets import brackets as data
from interpbook.zoo import brackets as zb
from interpbook.zoo import checkpoints, load_model

NAME = zb.NAME


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is as fast, and kinder to shared CPUs
    yield load_model(NAME, device="cpu", profile="default")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def test_data():
    # The first 500 strings of each class of the 1,000-per-class test set metrics.json reports.
    return data.test_set(500)


def test_held_out_seeds_differ_from_training():
    assert len({data.TRAIN_SEED, data.VALIDATION_SEED, data.TEST_SEED}) == 3
    assert zb.RECIPE.train_seed == data.TRAIN_SEED


def test_architecture(model):
    cfg = model.cfg
    assert cfg.n_layers == 3 and not cfg.attn_only
    assert cfg.attention_dir == "bidirectional"
    assert cfg.normalization_type.upper() == "LN"
    assert (cfg.d_vocab, cfg.d_vocab_out, cfg.n_ctx) == (data.D_VOCAB, 2, data.N_CTX)


def test_per_class_accuracy_on_held_out_test_set(model, test_data):
    result = zb.evaluate(model, test_data)
    for name in data.CLASSES:
        assert result["accuracy"][name] >= 0.99, (name, result["accuracy"])
    # metrics.json reports the full test set (1,000 per class, a superset of these strings):
    # it must pass too, and cannot have fewer errors than this prefix of it.
    metrics = checkpoints.load_metrics(NAME)
    assert metrics["test"]["seed"] == data.TEST_SEED
    n_full = metrics["test"]["n_per_class"]
    full = data.test_set(n_full)
    for name in data.CLASSES:
        assert full.of_class(name).strings[:500] == test_data.of_class(name).strings
    for name in data.CLASSES:
        full_acc = metrics["test"]["accuracy"][name]
        assert full_acc >= 0.99, (name, full_acc)
        errors_here = round((1 - result["accuracy"][name]) * 500)
        assert errors_here <= round((1 - full_acc) * n_full), name


def test_padding_is_masked(model):
    """Fixed-length and longest-only padding give the same logits at [start]."""
    strings = ["", "()", ")(", "(()())" * 6, "((((" * 10]
    a, am = data.tokenize(strings)
    b, bm = data.tokenize(strings, pad_to=None)
    with torch.no_grad():
        la = model(a, attention_mask=am)[:, data.CLS_POS]
        lb = model(b, attention_mask=bm)[:, data.CLS_POS]
    assert torch.allclose(la, lb, atol=1e-4)
    logits, cache = model.run_with_cache(a, attention_mask=am)
    pattern = cache["blocks.0.attn.hook_pattern"]  # [batch, head, query, key]
    assert pattern.shape == (len(strings), model.cfg.n_heads, data.N_CTX, data.N_CTX)
    assert float(pattern[0, :, :, 2:].abs().max()) == 0.0  # "" is [start] [end] then pads


def test_generators_label_their_classes():
    d = data.make_dataset(200, seed=123)
    for name in data.CLASSES:
        sub = d.of_class(name)
        assert all(len(s) <= data.MAX_LEN for s in sub.strings)
        if name == "balanced":
            assert bool((sub.labels == data.BALANCED).all())
        elif name != "random":
            assert bool((sub.labels == data.UNBALANCED).all()), name
    dips = d.of_class("equal_counts_dip").strings
    assert all(s.count("(") == s.count(")") for s in dips)
    joined = d.of_class("joined_close_open").strings
    assert all(s.count("(") == s.count(")") and min(data.heights(s)) == -1 for s in joined)
    assert all(len(s) % 2 == 1 for s in d.of_class("odd_length").strings)
    # deterministic
    assert data.make_dataset(50, seed=7).strings == data.make_dataset(50, seed=7).strings


def test_random_balanced_is_uniform():
    rng = random.Random(0)
    counts: dict[str, int] = {}
    for _ in range(7000):
        s = data.random_balanced(rng, 4)
        counts[s] = counts.get(s, 0) + 1
    assert len(counts) == 14  # Catalan(4)
    assert all(data.is_balanced(s) for s in counts)
    assert min(counts.values()) > 400 and max(counts.values()) < 600


def test_is_balanced():
    assert data.is_balanced("") and data.is_balanced("(())()")
    for s in [")(", "(()", "())(()", "(", "())"]:
        assert not data.is_balanced(s), s


def test_tokenisation_round_trips():
    strings = ["", "(", ")", "()", ")(", "(()))(", "(" * 40, "()" * 20]
    tokens, mask = data.tokenize(strings)
    assert tokens.shape == mask.shape == (len(strings), data.N_CTX)
    assert data.detokenize(tokens) == strings
    assert torch.equal(mask.sum(-1), torch.tensor([len(s) + 2 for s in strings]))
    assert bool((tokens[:, 0] == data.START).all())
    assert data.token_strings(tokens[3, :5]) == ["[start]", "(", ")", "[end]", "[pad]"]
    short, short_mask = data.tokenize(strings[:4], pad_to=None)
    assert short.shape == (4, 4) and data.detokenize(short) == strings[:4]
    single, _ = data.tokenize("(()")
    assert data.detokenize(single[0]) == ["(()"]


@pytest.mark.parametrize(
    "bad, fragment",
    [("(a)", "'a' at index 1"), ("[]", "'[' at index 0"), ("(" * 41, "length 41"), (42, "int")],
)
def test_bad_input_names_the_expected_input(bad, fragment, model):
    for call in (lambda: data.tokenize(bad), lambda: zb.classify(model, [bad])):
        with pytest.raises(data.BracketInputError) as err:
            call()
        assert "'(' and ')'" in str(err.value) and "40" in str(err.value)
        assert fragment in str(err.value)


def test_predict_balanced(model):
    assert zb.predict_balanced(model, ["(())()", "())(()", ""]) == [True, False, True]
