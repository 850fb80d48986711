"""The shipped grokking checkpoint: it generalises, its embedding is Fourier-sparse, and its
training run shows memorisation long before generalisation."""

from __future__ import annotations

import math

import pytest
import torch

from interpbook.datasets import modular_addition as mad
from interpbook.solutions.grokking.fourier_embedding import fourier_basis
from interpbook.zoo import checkpoints, load_model
from interpbook.zoo import modular_addition as ma

NAME = ma.NAME


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny matmuls: on a shared CPU, extra intra-op threads make them many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    return load_model(NAME, device="cpu", profile="default")


@pytest.fixture(scope="module")
def data():
    return mad.dataset()


def test_split_is_deterministic_and_disjoint(data):
    again = mad.dataset()
    assert torch.equal(data.train_indices, again.train_indices)
    n = mad.P * mad.P
    assert len(data.train_indices) == int(mad.TRAIN_FRACTION * n)
    both = torch.cat([data.train_indices, data.test_indices])
    assert torch.equal(both.sort().values, torch.arange(n))
    assert torch.equal(data.tokens[:, 2], torch.full((n,), mad.P))
    a, b = data.tokens[:, 0], data.tokens[:, 1]
    assert torch.equal(data.labels, (a + b) % mad.P)
    assert int(data.train_mask.sum()) == len(data.train_indices)


def test_architecture(model):
    cfg = model.cfg
    assert (cfg.n_layers, cfg.d_vocab, cfg.d_vocab_out, cfg.n_ctx) == (1, mad.P + 1, mad.P, 3)
    assert not cfg.attn_only and cfg.normalization_type is None and cfg.act_fn == "relu"


def test_final_accuracy(model, data):
    test = ma.evaluate(model, data.test_tokens, data.test_labels)
    train = ma.evaluate(model, data.train_tokens, data.train_labels)
    assert test["accuracy"] >= 0.999, test
    assert train["accuracy"] == 1.0, train
    # metrics.json quotes what the shipped weights do
    metrics = checkpoints.load_metrics(NAME)
    assert math.isclose(metrics["test_accuracy"], test["accuracy"], abs_tol=1e-6)


def test_fourier_basis_is_orthonormal():
    basis, names = fourier_basis(mad.P)
    assert basis.shape == (mad.P, mad.P) and len(names) == mad.P
    assert torch.allclose(basis @ basis.T, torch.eye(mad.P), atol=1e-5)


def test_embedding_is_sparse_in_fourier_basis(model):
    norms = ma.embedding_fourier_norms(model)
    assert norms.shape == ((mad.P + 1) // 2,)
    total = float(model.W_E[: mad.P].detach().pow(2).sum())
    assert math.isclose(float(norms.pow(2).sum()), total, rel_tol=1e-4)
    keys, share = ma.embedding_key_frequencies(model, share=0.8)
    assert len(keys) <= 10, keys
    assert share >= 0.8
    # the top 10 frequencies together carry most of the embedding
    top10 = norms.pow(2).sort(descending=True).values[:10].sum() / norms.pow(2).sum()
    assert top10 >= 0.8


def test_curves_show_memorisation_before_generalisation():
    curves = ma.load_curves()
    epochs = curves["epoch"]
    assert len(epochs) == len(curves["train_acc"]) == len(curves["test_acc"])
    first_train = next(e for e, a in zip(epochs, curves["train_acc"]) if a >= 1.0)
    first_test = next(e for e, a in zip(epochs, curves["test_acc"]) if a >= 0.99)
    assert first_test >= 3 * first_train, (first_train, first_test)
    # while the train set is memorised, the test loss is far above the train loss
    i = epochs.index(first_train)
    assert curves["test_loss"][i] > 10 * curves["train_loss"][i]


def test_snapshots_recompute_the_transition(data):
    snaps = ma.load_snapshot_state_dicts()
    assert len(snaps) >= 20
    epochs = [e for e, _ in snaps]
    assert epochs == sorted(epochs) and epochs[0] == 0
    # Recompute accuracies from the half-precision snapshots, with the trainer's forward, on
    # fixed subsets (1,500 train and 1,500 test problems) to keep the test fast.
    gen = torch.Generator().manual_seed(0)
    train_sub = data.train_indices[torch.randperm(len(data.train_indices), generator=gen)[:1500]]
    test_sub = data.test_indices[torch.randperm(len(data.test_indices), generator=gen)[:1500]]
    acc = []
    for _, sd in snaps:
        with torch.no_grad():
            correct = [
                ma.last_position_logits(sd, data.tokens[idx]).argmax(-1) == data.labels[idx]
                for idx in (train_sub, test_sub)
            ]
        acc.append(tuple(float(c.float().mean()) for c in correct))
    # some snapshot has memorised the train set while test accuracy is still low
    assert any(tr >= 0.99 and te < 0.5 for tr, te in acc), acc
    # and the last snapshot generalises
    assert acc[-1][1] >= 0.99, acc[-1]
    first_train = next(e for e, (tr, _) in zip(epochs, acc) if tr >= 0.99)
    first_test = next(e for e, (_, te) in zip(epochs, acc) if te >= 0.99)
    assert first_test >= 3 * first_train, (first_train, first_test)


def test_booted_snapshot_matches_state_dict():
    epoch, sd = ma.load_snapshot_state_dicts()[-1]
    ((e2, snap_model),) = ma.load_snapshots(epochs=[epoch])
    assert e2 == epoch
    tokens = mad.dataset().tokens[:500]
    with torch.no_grad():
        ref = ma.last_position_logits(sd, tokens, ma.CONFIG)
        got = snap_model(tokens)[:, -1]
    assert torch.allclose(ref, got, atol=1e-3)


def test_shipped_files_are_small():
    folder = checkpoints.checkpoint_dir(NAME)
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert total <= 12 * 1024 * 1024, total
