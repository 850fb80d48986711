"""`icl-tasks`: the task data, the tokenizer, and the in-context learning the shipped
checkpoint must show (tests on the shipped file)."""

from __future__ import annotations

import pytest

from interpbook.datasets import icl_tasks as data
from interpbook.zoo import icl_tasks as zi
from interpbook.zoo import load_model


def test_every_input_belongs_to_several_tasks():
    # With no examples the task must be ambiguous: every query word has two or more answers.
    tasks_of: dict[str, set[str]] = {}
    for task, pairs in data.task_pairs().items():
        for x, _ in pairs:
            tasks_of.setdefault(x, set()).add(task)
    assert min(len(t) for t in tasks_of.values()) >= 2


def test_held_out_pairs_are_disjoint_and_every_task_has_some():
    train, held = data.split_pairs()
    for task in data.TASKS:
        assert len(held[task]) >= 3
        assert not set(held[task]) & set(train[task])
        assert sorted(held[task] + train[task]) == sorted(data.task_pairs()[task])


def test_prompts_use_training_examples_and_never_show_the_query():
    train, held = data.split_pairs()
    prompts, answers = data.sample_prompts("antonym", 30, 5)
    for prompt, answer in zip(prompts, answers):
        *examples, query = prompt.split(" , ")
        pairs = [tuple(e.split(" -> ")) for e in examples]
        assert len(pairs) == 5 and all(p in train["antonym"] for p in pairs)
        q = query.removesuffix(" ->")
        assert (q, answer) in held["antonym"] and q not in [x for x, _ in pairs]
    # The corrupted baseline: the same inputs and query, each example with another one's answer.
    shuffled, _ = data.sample_prompts("antonym", 30, 5, shuffle_labels=True)
    for clean, bad in zip(prompts, shuffled):
        c_pairs = [e.split(" -> ") for e in clean.split(" , ")[:-1]]
        b_pairs = [e.split(" -> ") for e in bad.split(" , ")[:-1]]
        assert [x for x, _ in c_pairs] == [x for x, _ in b_pairs]
        assert sorted(y for _, y in c_pairs) == sorted(y for _, y in b_pairs)
        assert all(cy != by for (_, cy), (_, by) in zip(c_pairs, b_pairs))
        assert clean.split(" , ")[-1] == bad.split(" , ")[-1]
    with pytest.raises(ValueError, match="unknown task 'synonym'"):
        data.sample_prompts("synonym", 1, 5)


def test_tokenizer_gives_one_token_per_word():
    tok = zi.build_tokenizer()
    for prompts in (data.sample_prompts(t, 5, 3)[0] for t in data.TASKS):
        for p in prompts:
            ids = tok(p)["input_ids"]
            assert ids[0] == tok.bos_token_id and len(ids) == len(p.split()) + 1
            assert tok.unk_token_id not in ids


@pytest.fixture(scope="module")
def shipped():
    return load_model("icl-tasks"), zi.load_tokenizer()


def test_shipped_model_is_a_transformers_gpt2(shipped):
    model, tok = shipped
    assert type(model).__name__ == "GPT2LMHeadModel" and len(model.transformer.h) == 4
    assert model.config.vocab_size == len(tok) == len(data.vocabulary())


def test_five_examples_solve_held_out_queries_of_every_task(shipped):
    # The target: >= 90 % top-1 on held-out queries of every task with 5 examples.
    model, tok = shipped
    acc = {t: zi.icl_accuracy(model, tok, t, 5, n=100) for t in data.TASKS}
    assert min(acc.values()) >= 0.9, acc


def test_without_examples_or_with_random_labels_it_is_far_worse(shipped):
    # Zero-shot queries are ambiguous, and random answer words hide the task: both far below
    # 5-shot. (Shuffled labels do not hide it: the answer words still show the task's kind.)
    model, tok = shipped
    def mean(**kw):
        return sum(zi.icl_accuracy(model, tok, t, n=100, **kw) for t in data.TASKS) / len(data.TASKS)
    five, zero, random = mean(n_examples=5), mean(n_examples=0), mean(n_examples=5, random_labels=True)
    assert zero <= five - 0.5, (zero, five)
    assert random <= five - 0.3, (random, five)


def test_random_labels_keep_the_inputs_and_hide_the_kind_of_answer():
    clean, _ = data.sample_prompts("plural", 20, 5)
    bad, _ = data.sample_prompts("plural", 20, 5, random_labels=True)
    plurals = {y for _, y in data.task_pairs()["plural"]}
    for c, b in zip(clean, bad):
        assert [e.split(" -> ")[0] for e in c.split(" , ")] == [e.split(" -> ")[0] for e in b.split(" , ")]
        assert not {e.split(" -> ")[1] for e in b.split(" , ")[:-1]} & plurals
    with pytest.raises(ValueError, match="choose one corruption"):
        data.sample_prompts("plural", 1, 5, shuffle_labels=True, random_labels=True)


def test_training_is_deterministic(tmp_path):
    import os
    import subprocess
    import sys

    code = "from interpbook.zoo.icl_tasks import train; train(steps=4, eval_every=2, batch=8, n_layer=1, d_model=32, n_head=2)"
    runs = []
    for run in ("a", "b"):
        env = {**os.environ, "INTERP_BOOK_CHECKPOINTS": str(tmp_path / run)}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append((tmp_path / run / "icl-tasks" / "model.safetensors").read_bytes())
    assert runs[0] == runs[1], "two identical training runs produced different weights"


def test_missing_checkpoint_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_BOOK_CHECKPOINTS", str(tmp_path))
    with pytest.raises(Exception, match="interpbook train icl-tasks"):
        zi.load()
