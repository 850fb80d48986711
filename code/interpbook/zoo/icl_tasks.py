"""``icl-tasks``: a small GPT-2 that learns word-level tasks in context, saved in `transformers` format.

The model is a ``transformers`` ``GPT2LMHeadModel`` with a word-level tokenizer, so that it loads,
and nnsight traces it, exactly as a model from the hub would (``model.transformer.h[i].attn``).
It is trained on two kinds of sequences (:mod:`interpbook.datasets.icl_tasks`):

- unnamed in-context prompts ``x1 -> y1 , ... , xk -> yk`` of one task, built from the task's
  *training* pairs only, with 1 to 8 examples; the loss is on every answer;
- named statements ``antonym : hot -> cold , plural : cat -> cats , ...`` covering *every* pair of
  every task, held-out pairs included; the loss is on every answer.

A held-out query in an unnamed prompt thus needs the task inferred from the examples and a fact
retrieved that the model has seen only in named form.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from interpbook.datasets import icl_tasks as data
from interpbook.zoo.checkpoints import _require, checkpoint_dir
from interpbook.zoo.registry import ModelSpec, register
from interpbook.zoo.train import Stopwatch, adamw, run_recipe, run_steps

NAME = "icl-tasks"


@dataclass(frozen=True)
class Recipe:
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    n_ctx: int = 48
    steps: int = 2000
    batch: int = 64
    statement_frac: float = 0.5  # share of sequences that are named statements
    max_examples: int = 8
    lr: float = 1e-3
    min_lr_frac: float = 0.1
    warmup: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 500
    seed: int = 0


RECIPE = Recipe()


def build_tokenizer():
    """A word-level ``PreTrainedTokenizerFast`` over :func:`data.vocabulary`: splits on spaces,
    prepends ``<bos>``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(data.vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=data.UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single=f"{data.BOS} $A", special_tokens=[(data.BOS, vocab[data.BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=data.BOS, pad_token=data.PAD, unk_token=data.UNK,
                                   eos_token=data.BOS, padding_side="left")


def model_config(r: Recipe, vocab_size: int):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab_size, n_positions=r.n_ctx, n_embd=r.d_model, n_layer=r.n_layer,
                      n_head=r.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=0, eos_token_id=0, pad_token_id=1)


def load_tokenizer():
    """The shipped tokenizer (``transformers`` format)."""
    from transformers import PreTrainedTokenizerFast

    _require(checkpoint_dir(NAME) / "tokenizer.json", NAME)
    return PreTrainedTokenizerFast.from_pretrained(str(checkpoint_dir(NAME)))


def load(device: str | torch.device = "cpu"):
    """The shipped model: a ``transformers`` ``GPT2LMHeadModel`` in float32, eval mode."""
    from transformers import GPT2LMHeadModel

    _require(checkpoint_dir(NAME) / "model.safetensors", NAME)
    model = GPT2LMHeadModel.from_pretrained(str(checkpoint_dir(NAME)), dtype=torch.float32)
    return model.to(device).eval()


def as_transformer_lens(model, tokenizer):
    """A copy of ``model`` wrapped by TransformerLens, for its hook names
    (``blocks.1.attn.hook_z``, ...) and ``run_with_hooks``; its logits equal the ``transformers``
    model's. A copy, because the wrapper rebuilds the blocks of the model it is given in place.
    No hub call: the config is read from the shipped folder."""
    import copy

    from transformer_lens import TransformerBridge

    return TransformerBridge.boot_transformers(str(checkpoint_dir(NAME)), hf_model=copy.deepcopy(model),
                                               tokenizer=tokenizer, device=next(model.parameters()).device)


class _Sequences:
    """Training sequences as token ids with a loss mask on the answers (seeded)."""

    def __init__(self, r: Recipe, tokenizer) -> None:
        self.r, self.rng = r, random.Random(r.seed)
        self.train, _ = data.split_pairs()
        self.all = data.task_pairs()
        self.ids = tokenizer.get_vocab()

    def _prompt(self) -> tuple[list[str], list[int]]:
        task = self.rng.choice(data.TASKS)
        pairs = self.rng.sample(self.train[task], self.rng.randint(2, self.r.max_examples + 1))
        words, mask = [data.BOS], [0]
        for x, y in pairs:
            words += [x, data.ARROW, y, data.COMMA]
            mask += [0, 0, 1, 0]
        return words[:-1], mask[:-1]

    def _statements(self) -> tuple[list[str], list[int]]:
        # A window of a stream of statements, starting at a random offset: every fact is seen at
        # every position (with a fixed start, held-out facts were retrieved well only where
        # statements had put them). A statement cut at the start has no name: no loss on it.
        words, mask = [], []
        while len(words) < self.r.n_ctx + 6:
            task = self.rng.choice(data.TASKS)
            x, y = self.rng.choice(self.all[task])
            words += [task, data.COLON, x, data.ARROW, y, data.COMMA]
            mask += [0, 0, 0, 0, 1, 0]
        start = self.rng.randrange(6)
        if start:
            mask[4] = 0
        words, mask = [data.BOS] + words[start:], [0] + mask[start:]
        return words[: self.r.n_ctx], mask[: self.r.n_ctx]

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.full((self.r.batch, self.r.n_ctx), self.ids[data.PAD], dtype=torch.long)
        m = torch.zeros(self.r.batch, self.r.n_ctx)
        for i in range(self.r.batch):
            words, mask = self._statements() if self.rng.random() < self.r.statement_frac else self._prompt()
            x[i, : len(words)] = torch.tensor([self.ids[w] for w in words])
            m[i, : len(mask)] = torch.tensor(mask, dtype=torch.float)
        return x, m


@torch.no_grad()
def icl_accuracy(model, tokenizer, task: str, n_examples: int, *, n: int = 100, queries: str = "held_out",
                 seed: int = 0, shuffle_labels: bool = False, random_labels: bool = False) -> float:
    """Top-1 accuracy of the answer word on ``n`` prompts of :func:`data.sample_prompts`."""
    prompts, answers = data.sample_prompts(task, n, n_examples, queries=queries, seed=seed,
                                           shuffle_labels=shuffle_labels, random_labels=random_labels)
    device = next(model.parameters()).device
    ids = tokenizer(prompts, return_tensors="pt")["input_ids"].to(device)  # equal lengths: no padding
    top = model(ids).logits[:, -1].argmax(-1).cpu()
    want = torch.tensor(tokenizer.convert_tokens_to_ids(answers))
    return (top == want).float().mean().item()


def accuracy_table(model, tokenizer, shots=(0, 1, 2, 3, 4, 5, 6, 7, 8), n: int = 100) -> dict[str, dict[str, float]]:
    """Held-out accuracy per task and number of examples, and the two corrupted baselines at 5."""
    table = {task: {str(k): round(icl_accuracy(model, tokenizer, task, k, n=n), 4) for k in shots}
             for task in data.TASKS}
    for task in data.TASKS:
        table[task]["5 shuffled"] = round(icl_accuracy(model, tokenizer, task, 5, n=n, shuffle_labels=True), 4)
        table[task]["5 random"] = round(icl_accuracy(model, tokenizer, task, 5, n=n, random_labels=True), 4)
    return table


def train(name: str = NAME, device: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Train ``icl-tasks`` deterministically and save it; returns the metrics."""
    return run_recipe(RECIPE, _train, name, device, **overrides)


def _train(name: str, r: Recipe, device: str) -> dict[str, Any]:
    from transformers import GPT2LMHeadModel

    clock = Stopwatch()
    tokenizer = build_tokenizer()
    model = GPT2LMHeadModel(model_config(r, len(tokenizer))).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(params, lr=r.lr, weight_decay=r.weight_decay, betas=(0.9, 0.98))
    seqs = _Sequences(r, tokenizer)
    history: list[dict[str, Any]] = []
    recent: list[float] = []

    def checkpoint(step: int) -> None:
        if step % r.eval_every and step != r.steps:
            return
        model.eval()
        acc5 = {t: round(icl_accuracy(model, tokenizer, t, 5, n=50), 3) for t in data.TASKS}
        by_shots = {k: round(sum(icl_accuracy(model, tokenizer, t, k, n=30) for t in data.TASKS) / len(data.TASKS), 3)
                    for k in range(1, r.max_examples + 1)}
        acc0 = {t: round(icl_accuracy(model, tokenizer, t, 0, n=50), 3) for t in data.TASKS}
        model.train()
        row = {"step": step, "seconds": round(clock.seconds(), 1),
               "train_loss": round(sum(recent) / len(recent), 4) if recent else None,
               "held_out_5_shot": acc5, "held_out_by_shots": by_shots, "zero_shot": acc0}
        recent.clear()
        history.append(row)
        print(json.dumps(row), flush=True)

    def train_step(step: int) -> None:
        x, m = seqs.batch()
        x, m = x.to(device), m.to(device)
        logits = model(x).logits[:, :-1]
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
        loss = (losses * m[:, 1:].reshape(-1)).sum() / m[:, 1:].sum()
        loss.backward()
        recent.append(loss.item())

    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / r.warmup)
        return r.lr * warm * (r.min_lr_frac + (1 - r.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * step / r.steps)))

    train_seconds = run_steps(opt, r.steps, train_step, lr_at=lr_at, grad_clip=r.grad_clip, params=params,
                              checkpoint=checkpoint, clock=clock)
    model.eval()
    metrics = {"recipe": asdict(r), "device": device, "train_seconds": round(train_seconds, 1),
               "vocab_size": len(tokenizer), "accuracy": accuracy_table(model, tokenizer), "history": history}
    out = checkpoint_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(str(out))  # float16 on disk; `load` returns float32
    tokenizer.save_pretrained(str(out))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


register(
    ModelSpec(
        name=NAME,
        description="4-layer GPT-2 (transformers format) that learns six word-level tasks in context",
        load_default=load,
        trainer="interpbook.zoo.icl_tasks:train",
    )
)
