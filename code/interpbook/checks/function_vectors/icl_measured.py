"""Checks for section 2, "In-context learning, measured" (book/chapters/function_vectors/02-icl-measured.md).

``top1_accuracy`` and ``answer_rank`` get hand-made logits whose argmax and ranks are written
out by hand (one batch is square, [6, 6], so that an argmax over the wrong axis returns a tensor
of the right shape and a known, different accuracy). ``accuracy_by_shots`` gets a fake model
(:class:`_FakeICL`) that reads its prompts word by word: it gives the task's right answer at the
final position exactly when the prompt has at least two examples whose labels are all true for
the task, a wrong word otherwise, and the opposite at every *other* position. Its accuracy
for any list of shot counts, clean, shuffled or with random labels, is therefore known by
construction (with either corruption it is never right, since no label is true). ``logit_lens``
runs on the shipped ``icl-tasks`` model wrapped by nnsight, against an independent route: the
model's own forward with ``output_hidden_states=True`` (in ``transformers``, the last hidden state
already has the final LayerNorm applied, and the last layer's lens must equal the model's own
log-probabilities).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace

import torch

from interpbook.checks import CheckFailed, call, expect_float, expect_tensor, passed
from interpbook.datasets import icl_tasks as data

__all__ = [
    "check_top1_accuracy",
    "check_accuracy_by_shots",
    "check_logit_lens",
    "check_answer_rank",
]


@functools.cache
def _tokenizer():
    from interpbook.zoo import icl_tasks as zi

    return zi.load_tokenizer()


@functools.cache
def _model_and_lm():
    from nnsight import TransformersModel

    from interpbook.zoo import load_model

    model = load_model("icl-tasks")
    return model, TransformersModel(model, tokenizer=_tokenizer())


# --- top1_accuracy ----------------------------------------------------------------------------

def check_top1_accuracy(fn: Callable) -> None:
    """``fn(logits [n, vocab], answer_ids [n])``: the fraction of rows whose argmax is the answer."""
    # A square batch: argmax over the words is right on rows 0, 2, 4 (accuracy 0.5); an argmax over
    # the batch axis (per word, the row with the largest logit) matches the answers nowhere.
    logits = torch.full((6, 6), -1.0)
    top = torch.tensor([2, 0, 5, 3, 1, 4])  # each row's largest logit
    logits[torch.arange(6), top] = 3.0
    logits[torch.arange(6), (top + 1) % 6] = 1.0  # the second choice
    answers = torch.tensor([2, 1, 5, 4, 1, 5])  # right on rows 0, 2, 4
    wrong_axis = (logits.argmax(0) == answers).float().mean().item()
    assert wrong_axis == 0.0
    out = call(fn, logits.clone(), answers.clone(), what="(hand-made logits [6, 6], answer_ids [6])")
    if isinstance(out, torch.Tensor) and out.numel() == 6:
        raise CheckFailed(f"got a tensor of shape {list(out.shape)}; return one number, the mean over the batch.")
    got = expect_float(out, "the accuracy")
    if abs(got - 3) < 1e-6:
        raise CheckFailed("got 3: the number of right answers. Return the fraction (3 of 6 rows: 0.5).")
    if abs(got - 50) < 1e-4:
        raise CheckFailed("got 50: a percentage. Return a fraction between 0 and 1 (0.5).")
    if abs(got - wrong_axis) < 1e-6:
        raise CheckFailed(f"got {got:.3f}, expected 0.5 (rows 0, 2 and 4 have their largest logit on the answer). "
                          "Looks like the argmax ran over the batch axis (dim 0): take it over the vocabulary, "
                          "the last axis, `logits.argmax(-1)`.")
    if abs(got - 0.5) > 1e-6:
        raise CheckFailed(f"got {got:.4f}; expected 0.5 (rows 0, 2 and 4 of 6 have their largest logit on the answer).")
    # A batch that is not square, to be sure nothing depends on n == vocab.
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 20, generator=g)
    answers = logits.argmax(-1).clone()
    answers[[1, 4, 7]] = (answers[[1, 4, 7]] + 3) % 20
    out = call(fn, logits.clone(), answers.clone(), what="(random logits [9, 20], answer_ids [9])")
    got = expect_float(out, "the accuracy")
    if abs(got - 6 / 9) > 1e-6:
        raise CheckFailed(f"on random logits [9, 20] where 6 of 9 rows' argmax is the answer, got {got:.4f}; "
                          f"expected {6 / 9:.4f}.")
    passed("top1_accuracy takes the argmax over the vocabulary and averages over the batch")


# --- accuracy_by_shots ------------------------------------------------------------------------

class _FakeICL(torch.nn.Module):
    """Reads each prompt's words. At the final position it gives the right answer to the query iff
    the prompt has >= 2 examples whose labels are all true for ``task``; otherwise it copies the
    last example's label (or ``,`` with no example). At every other position it does the opposite,
    so that a function that reads the wrong position gets the complementary accuracies."""

    def __init__(self, tokenizer, task: str) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # so that next(model.parameters()) works
        self.words = {i: w for w, i in tokenizer.get_vocab().items()}
        self.ids = tokenizer.get_vocab()
        self.pairs = dict(data.task_pairs()[task])
        self.calls: list[int] = []

    def expected(self, prompt: str) -> bool:
        words = prompt.split()
        arrows = [j for j, w in enumerate(words) if w == data.ARROW]
        examples = [(words[j - 1], words[j + 1]) for j in arrows[:-1]]
        return len(examples) >= 2 and all(self.pairs.get(x) == y for x, y in examples)

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        if input_ids is None:
            raise TypeError("the fake model takes token ids: model(ids) or model(input_ids=ids)")
        input_ids = torch.as_tensor(input_ids)
        b, pos = input_ids.shape
        self.calls.append(b)
        logits = torch.zeros(b, pos, len(self.ids), device=self.anchor.device)
        for i, row in enumerate(input_ids.tolist()):
            words = [self.words[t] for t in row if self.words[t] not in (data.BOS, data.PAD)]
            prompt = " ".join(words)
            arrows = [j for j, w in enumerate(words) if w == data.ARROW]
            right = self.pairs[words[arrows[-1] - 1]]
            wrong = words[arrows[-2] + 1] if len(arrows) > 1 else data.COMMA
            ok = self.expected(prompt)
            logits[i, :, self.ids[right]] = 5.0
            # at the final position the right answer wins iff ok; at every other position iff not ok
            logits[i, :-1, self.ids[wrong]] = 9.0 * ok
            logits[i, -1, self.ids[wrong]] = 9.0 * (not ok)
        return SimpleNamespace(logits=logits)


def _known(fake: _FakeICL, task: str, shots, n: int, shuffle: bool, random: bool = False) -> list[float]:
    out = []
    for k in shots:
        prompts, _ = data.sample_prompts(task, n, k, shuffle_labels=shuffle, random_labels=random)
        out.append(sum(fake.expected(p) for p in prompts) / n)
    return out


def check_accuracy_by_shots(fn: Callable) -> None:
    """``fn(model, tokenizer, task, shots, n=..., shuffle_labels=..., random_labels=...)``: one top-1
    accuracy per shot count, on ``data.sample_prompts(task, n, k, shuffle_labels=..., random_labels=...)``."""
    tokenizer, task, n = _tokenizer(), "capital", 12
    shots = (3, 0, 8, 2, 1, 5)  # not sorted, on purpose
    fake = _FakeICL(tokenizer, task)
    want = torch.tensor(_known(fake, task, shots, n, shuffle=False))  # [1, 0, 1, 1, 0, 1]
    what = (f"(a fake model that answers right only with >= 2 true examples; task={task!r}, shots={shots}, n={n}, "
            "shuffle_labels=False)")
    out = call(fn, fake, tokenizer, task, shots, n=n, shuffle_labels=False, what=what)
    out = expect_tensor(out, "the accuracies", shape=(len(shots),), dims="len(shots)", floating=True).cpu()
    if torch.allclose(out, 1 - want):
        raise CheckFailed(f"got {out.tolist()} for shots {shots}; expected {want.tolist()}. This fake model gives the "
                          "right answer at the final position only with two or more true examples, and the opposite "
                          "at every *other* position: you read another position. Read the logits at the last "
                          "position, `logits[:, -1]`.")
    if torch.allclose(out, out[0].expand_as(out)):
        raise CheckFailed(f"got the same accuracy {out[0].item():.3f} for every shot count {shots}; expected "
                          f"{want.tolist()}. Build new prompts for each count: "
                          "`data.sample_prompts(task, n, k, ...)` inside the loop over `shots`.")
    if torch.allclose(out, torch.tensor([float(k + 1 >= 2) for k in shots])):
        raise CheckFailed(f"got {out.tolist()} for shots {shots}; expected {want.tolist()}: the fake model answers "
                          "right from 2 examples on, and you report it right with 1. Off by one in the number of "
                          "examples: pass `k` itself as `n_examples`.")
    if torch.allclose(out, torch.tensor(_known(fake, task, sorted(shots), n, shuffle=False))):
        raise CheckFailed(f"got {out.tolist()}: the accuracies of the sorted shot counts {sorted(shots)}. Keep the "
                          f"order of `shots` ({shots}).")
    if not torch.allclose(out, want):
        raise CheckFailed(f"got {out.tolist()} for shots {shots}; expected {want.tolist()} (this fake model answers "
                          "right exactly when the prompt has two or more examples with true labels).")
    fake = _FakeICL(tokenizer, task)
    want = torch.tensor(_known(fake, task, shots, n, shuffle=True))
    out = call(fn, fake, tokenizer, task, shots, n=n, shuffle_labels=True, what=what.replace("=False", "=True"))
    out = expect_tensor(out, "the accuracies", shape=(len(shots),), dims="len(shots)", floating=True).cpu()
    if not torch.allclose(out, want):
        raise CheckFailed(f"with shuffle_labels=True got {out.tolist()}; expected {want.tolist()}: with shuffled "
                          "labels this fake model is never right. Pass `shuffle_labels` on to `data.sample_prompts`.")
    fake_random = _FakeICL(tokenizer, task)
    want = torch.tensor(_known(fake_random, task, shots, n, shuffle=False, random=True))
    out = call(fn, fake_random, tokenizer, task, shots, n=n, random_labels=True,
               what=what.replace("shuffle_labels=False", "random_labels=True"))
    out = expect_tensor(out, "the accuracies", shape=(len(shots),), dims="len(shots)", floating=True).cpu()
    if not torch.allclose(out, want):
        raise CheckFailed(f"with random_labels=True got {out.tolist()}; expected {want.tolist()}: with random "
                          "labels this fake model is never right. Pass `random_labels` on to `data.sample_prompts`.")
    if fake.calls and max(fake.calls) != n:
        raise CheckFailed(f"the model saw batches of {sorted(set(fake.calls))} prompts; with n={n} it should see "
                          f"{n} prompts per shot count. Pass `n` on to `data.sample_prompts`.")
    passed("accuracy_by_shots scores new prompts for each shot count, at the final position")


# --- logit_lens -------------------------------------------------------------------------------

def _lens_reference(model, ids: torch.Tensor, position: int = -1, ln_f: bool = True) -> torch.Tensor:
    """[n, layer, vocab] log-probs from ``output_hidden_states`` (transformers applies ln_f to the last one)."""
    out = model(ids, output_hidden_states=True)
    n_layer = model.config.n_layer
    rows = []
    for layer in range(n_layer):
        if layer == n_layer - 1:
            rows.append(out.logits[:, position] if ln_f else None)
        else:
            h = out.hidden_states[layer + 1][:, position]
            rows.append(model.lm_head(model.transformer.ln_f(h) if ln_f else h))
    if not ln_f:  # the raw output of the last block is not among the hidden states: hook it
        got = {}
        handle = model.transformer.h[-1].register_forward_hook(lambda m, i, o: got.setdefault("h", o))
        try:
            model(ids)
        finally:
            handle.remove()
        h = got["h"][0] if isinstance(got["h"], tuple) else got["h"]
        rows[-1] = model.lm_head(h[:, position])
    return torch.stack(rows, 1).log_softmax(-1)


def check_logit_lens(fn: Callable) -> None:
    """``fn(lm, prompts)``: log-probs [n, layer, vocab] at the final position, after each block,
    through the final LayerNorm and the unembedding."""
    model, lm = _model_and_lm()
    tokenizer = _tokenizer()
    prompts, _ = data.sample_prompts("antonym", 6, 3)
    n_layer, vocab = model.config.n_layer, model.config.vocab_size
    with torch.no_grad():
        out = call(fn, lm, list(prompts), what="(the icl-tasks model wrapped by nnsight; 6 antonym prompts, 3 examples)")
        if isinstance(out, torch.Tensor) and out.ndim == 3 and out.shape[1] == n_layer + 1:
            raise CheckFailed(f"got {out.shape[1]} layers; expected {n_layer}, one per block "
                              "(`lm.transformer.h[layer].output`), without the embeddings.")
        out = expect_tensor(out, "the log-probs", shape=(len(prompts), n_layer, vocab), dims="n layer vocab",
                            floating=True).detach().cpu().float()
        ids = tokenizer(prompts, return_tensors="pt")["input_ids"].to(model.device)
        want = _lens_reference(model, ids).cpu()
        if torch.allclose(out, want, atol=1e-3):
            passed("logit_lens reads every block's output at the final position through ln_f and lm_head; "
                   "its last layer is the model's own log-probs")
            return
        lse = out.logsumexp(-1)
        if not torch.allclose(lse, torch.zeros_like(lse), atol=1e-3):
            if torch.allclose(out.log_softmax(-1), want, atol=1e-3):
                raise CheckFailed("your values are the lens's logits, not log-probabilities (each row's logsumexp "
                                  f"is {lse[0, 0].item():.2f}, not 0). Finish with `.log_softmax(-1)`.")
        if torch.allclose(out, _lens_reference(model, ids, position=0).cpu(), atol=1e-3):
            raise CheckFailed("your log-probs are those of position 0 (the <bos> token), the same for every prompt. "
                              "Read the final position: `output[:, -1]`.")
        if torch.allclose(out, _lens_reference(model, ids, ln_f=False).cpu(), atol=1e-3):
            raise CheckFailed("you applied the unembedding to the raw residual stream: the final LayerNorm is "
                              "missing. The model itself computes lm_head(ln_f(resid)); the lens must too.")
        if torch.allclose(out[:, -1], want[:, -1], atol=1e-3):
            bad = [layer for layer in range(n_layer) if not torch.allclose(out[:, layer], want[:, layer], atol=1e-3)]
            raise CheckFailed(f"the last layer matches the model's own log-probs, but layers {bad} do not. Read the "
                              "output of each block in turn, `lm.transformer.h[layer].output`, and put each through "
                              "the same ln_f and lm_head.")
        diff = (out - want).abs().amax((0, 2))
        raise CheckFailed(f"largest difference per layer from lm_head(ln_f(h[layer].output[:, -1])).log_softmax(-1): "
                          f"{[round(d, 4) for d in diff.tolist()]}. The last layer should equal the model's own "
                          "`model(ids).logits[:, -1].log_softmax(-1)`.")


# --- answer_rank ------------------------------------------------------------------------------

def check_answer_rank(fn: Callable) -> None:
    """``fn(log_probs [n, ..., vocab], answer_ids [n])``: how many words score above the answer."""
    # 3 prompts, 2 layers, 5 words: ranks written out by hand.
    lp = torch.tensor([
        [[-0.1, -3.0, -2.0, -5.0, -4.0], [-2.0, -0.2, -3.0, -4.0, -5.0]],
        [[-1.0, -2.0, -3.0, -4.0, -0.5], [-5.0, -4.0, -3.0, -2.0, -1.0]],
        [[-4.0, -1.0, -0.1, -3.0, -2.0], [-1.0, -2.0, -3.0, -4.0, -5.0]],
    ])
    answers = torch.tensor([0, 3, 2])
    want = torch.tensor([[0, 1], [4, 1], [0, 2]])
    out = call(fn, lp.clone(), answers.clone(), what="(hand-made log_probs [3, 2, 5], answer_ids [3])")
    out = expect_tensor(out, "the ranks", shape=(3, 2), dims="n layer").cpu()
    if out.is_floating_point():
        raise CheckFailed(f"the ranks have dtype {out.dtype}; return integers (e.g. `.sum(-1)` of a boolean mask).")
    if torch.equal(out, want + 1):
        raise CheckFailed(f"got {out.tolist()}; expected {want.tolist()}: every rank is one too high. The top word has "
                          "rank 0: count the words with a *strictly* larger log-prob than the answer's.")
    if torch.equal(out, lp.shape[-1] - 1 - want):
        raise CheckFailed(f"got {out.tolist()}; expected {want.tolist()}: these ranks count from the bottom (the most "
                          "likely word gets 4). Count the words that score *above* the answer.")
    if not torch.equal(out.long(), want):
        raise CheckFailed(f"got {out.tolist()}; expected {want.tolist()} (e.g. prompt 1's answer, word 3, has "
                          "log-prob -4.0 at layer 0: all four other words score higher, so rank 4).")
    # Any leading shape: [n, vocab] alone.
    out = call(fn, lp[:, 0].clone(), answers.clone(), what="(hand-made log_probs [3, 5], answer_ids [3])")
    out = expect_tensor(out, "the ranks", shape=(3,), dims="n").cpu()
    if not torch.equal(out.long(), want[:, 0]):
        raise CheckFailed(f"on log_probs [3, 5] got {out.tolist()}; expected {want[:, 0].tolist()}. Make it work for "
                          "log_probs [n, vocab] as well as [n, layer, vocab].")
    passed("answer_rank counts the words above the answer (0 = top), for any number of middle axes")
