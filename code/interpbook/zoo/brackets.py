"""``brackets-classifier``: a book-trained bidirectional transformer that tells balanced bracket
strings from unbalanced ones.

Architecture: a TransformerLens-native model (``TransformerBridge.boot_native``) with
``attention_dir="bidirectional"`` (no causal mask), 3 layers of attention + ReLU MLP, LayerNorm,
learned absolute positions, ``d_vocab_out=2``. The data, tokens and labels live in
:mod:`interpbook.datasets.brackets`; the class is read from the logits at position 0
(``[start]``): index 0 = unbalanced, 1 = balanced.

Padding is masked: always pass the attention mask that
:func:`interpbook.datasets.brackets.tokenize` returns, e.g.::

    tokens, mask = tokenize(["(())", ")("])
    logits, cache = model.run_with_cache(tokens, attention_mask=mask)
    logits[:, 0]                      # [batch, 2]

:func:`classify` does this for a list of strings. Without the mask the model also attends to
``[pad]`` tokens, which it never did in training, and its answers are not meaningful.

There is no hub model for this role, so both profiles load the shipped checkpoint.
Regenerate it with ``interpbook train brackets-classifier``.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from interpbook.datasets import brackets as data
from interpbook.zoo.native import build_native, load_native_checkpoint
from interpbook.zoo.registry import ModelSpec, register
from interpbook.zoo.train import BestStep, Stopwatch, adamw, run_steps, training_run, write_checkpoint

NAME = "brackets-classifier"

CONFIG: dict[str, Any] = {
    "model_name": NAME,
    "n_layers": 3,
    "d_model": 48,
    "n_heads": 2,
    "d_head": 24,
    "d_mlp": 96,
    "act_fn": "relu",
    "normalization_type": "LN",
    "attention_dir": "bidirectional",
    "positional_embedding_type": "standard",
    "d_vocab": data.D_VOCAB,
    "d_vocab_out": 2,
    "n_ctx": data.N_CTX,
    "default_prepend_bos": False,
    "init_mode": "gpt2",
    "seed": 0,
}


@dataclass(frozen=True)
class Recipe:
    """The training recipe. `interpbook train brackets-classifier` runs exactly this."""

    steps: int = 3000
    batch_size: int = 128
    length_chunks: int = 2  # forward each batch in 2 length-sorted chunks
    lr: float = 2e-3
    min_lr_fraction: float = 0.05  # cosine decay to 5 % of lr
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    eval_every: int = 100
    validation_per_class: int = 1000
    test_per_class: int = 1000
    train_seed: int = data.TRAIN_SEED
    threads: int = 1

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to ``min_lr_fraction`` (0-based optimiser steps)."""
        if step < self.warmup_steps:
            factor = (step + 1) / self.warmup_steps
        else:
            progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
            factor = self.min_lr_fraction + (1 - self.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr * factor  # base * factor, as torch's LambdaLR computed it


RECIPE = Recipe()


def load(device: str | torch.device = "cpu"):
    """The shipped checkpoint as a TransformerBridge (use :func:`interpbook.zoo.load_model`)."""
    return load_native_checkpoint(NAME, device=device)


register(
    ModelSpec(
        name=NAME,
        description="3-layer bidirectional classifier of balanced ( ) strings (book-trained)",
        load_default=load,
        load_full=None,
        hub_name=None,
        trainer="interpbook.zoo.brackets:train",
    )
)


# --- using the model -----------------------------------------------------------------------
def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def classify(model: torch.nn.Module, strings: str | Sequence[str], batch_size: int = 2000) -> torch.Tensor:
    """Logits ``[batch, 2]`` (unbalanced, balanced) for each string, read at position 0."""
    if isinstance(strings, str):
        strings = [strings]
    strings = [data.check_string(s) for s in strings]
    dev = _device_of(model)
    # Similar lengths together, so little compute goes to padding (masked: same logits).
    order = sorted(range(len(strings)), key=lambda i: len(strings[i]))
    out = torch.zeros(len(strings), 2)
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        tokens, mask = data.tokenize([strings[j] for j in idx], pad_to=None)
        logits = model(tokens.to(dev), attention_mask=mask.to(dev))
        out[idx] = logits[:, data.CLS_POS].float().cpu()
    return out


def predict_balanced(model: torch.nn.Module, strings: str | Sequence[str]) -> list[bool]:
    """The model's verdict for each string: True = balanced."""
    return (classify(model, strings).argmax(-1) == data.BALANCED).tolist()


def evaluate(model: torch.nn.Module, dataset: data.BracketData) -> dict[str, Any]:
    """Accuracy per class (and overall, and the minimum over classes) and the mean loss."""
    logits = classify(model, dataset.strings)
    correct = logits.argmax(-1) == dataset.labels
    acc = {}
    for name in data.CLASSES:
        idx = torch.tensor([c == name for c in dataset.classes])
        if idx.any():
            acc[name] = correct[idx].float().mean().item()
    return {
        "accuracy": acc,
        "min_accuracy": min(acc.values()),
        "overall_accuracy": correct.float().mean().item(),
        "loss": F.cross_entropy(logits, dataset.labels).item(),
    }


# --- training ------------------------------------------------------------------------------
def train(name: str = NAME, device: str | None = None, steps: int | None = None, **overrides: Any) -> dict[str, Any]:
    """Train from scratch, keep the step with the best validation score, ship it.

    The checkpoint chosen is the evaluated step with the highest *minimum* per-class
    validation accuracy (ties: lower validation loss), not the last step: the accuracy on the
    rarest hard negatives swings from step to step. Weights are stored in half precision;
    the reported test metrics are measured on the stored weights, reloaded.
    """
    if name != NAME:
        raise ValueError(f"This trainer only trains {NAME!r}, not {name!r}.")
    if steps is not None:
        overrides["steps"] = steps
    recipe = replace(RECIPE, **overrides)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # Few threads on shared CPUs; also makes runs repeatable. Restored afterwards.
    with training_run(recipe.train_seed, threads=recipe.threads):
        return _train(recipe, dev)


def _train(recipe: Recipe, dev: torch.device) -> dict[str, Any]:
    model = build_native(CONFIG, device=dev)
    # The bridge's wrapped native module: same parameters, without the per-call hook plumbing
    # (faster to train through; the saved state dict is the bridge's).
    net = model.original_model
    net.train()
    opt = adamw(model.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)

    val = data.validation_set(recipe.validation_per_class)
    test = data.test_set(recipe.test_per_class)
    held_out = set(test.strings)
    seen_held_out: set[str] = set()

    batches = data.training_batches(recipe.batch_size, seed=recipe.train_seed)
    curve: list[dict[str, Any]] = []
    best = BestStep()
    running = [0.0]  # summed train loss since the last evaluation
    clock = Stopwatch()

    def step(s: int) -> None:
        batch = next(batches)
        seen_held_out.update(x for x in batch.strings if x in held_out)
        # Length-sorted chunks waste less compute on padding; the summed chunk losses give
        # the gradient of the mean loss over the whole batch.
        order = sorted(range(len(batch)), key=lambda i: len(batch.strings[i]))
        chunk = math.ceil(len(batch) / recipe.length_chunks)
        for c in range(0, len(order), chunk):
            idx = order[c : c + chunk]
            tokens, mask = data.tokenize([batch.strings[i] for i in idx], pad_to=None)
            logits = net(tokens.to(dev), attention_mask=mask.to(dev))[:, data.CLS_POS]
            loss = F.cross_entropy(logits, batch.labels[idx].to(dev), reduction="sum") / len(batch)
            loss.backward()
            running[0] += loss.item()

    def checkpoint(done: int) -> None:
        if done == 0 or not (done % recipe.eval_every == 0 or done == recipe.steps):
            return
        net.eval()
        ev = evaluate(net, val)
        net.train()
        n = recipe.eval_every if done % recipe.eval_every == 0 else done % recipe.eval_every
        point = {
            "step": done,
            "seconds": round(clock.seconds(), 1),
            "train_loss": running[0] / n,
            "val_loss": ev["loss"],
            "val_accuracy": ev["accuracy"],
            "val_min_accuracy": ev["min_accuracy"],
        }
        running[0] = 0.0
        curve.append(point)
        best.offer((ev["min_accuracy"], -ev["loss"]), done, model.state_dict())
        worst = min(ev["accuracy"], key=ev["accuracy"].get)
        print(
            f"step {done:5d}  {point['seconds']:6.0f}s  train loss {point['train_loss']:.4f}  "
            f"val loss {ev['loss']:.4f}  val min acc {ev['min_accuracy']:.4f} ({worst})",
            flush=True,
        )

    seconds = run_steps(
        opt, recipe.steps, step, lr_at=recipe.lr_at, grad_clip=recipe.grad_clip,
        params=model.parameters(), checkpoint=checkpoint, clock=clock,
    )
    assert best.state is not None
    best_step = best.step

    model.load_state_dict(best.state)
    out = write_checkpoint(NAME, model.state_dict(), CONFIG, half=True)

    # Measure what ships: reload the stored (half precision) weights.
    shipped = load_native_checkpoint(NAME, device=dev)
    shipped.eval()
    val_eval = evaluate(shipped, val)
    test_eval = evaluate(shipped, test)
    metrics = {
        "model": NAME,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train_command": f"interpbook train {NAME}",
        "recipe": asdict(recipe),
        "train_mix": data.TRAIN_MIX,
        "training_seconds": round(seconds, 1),
        "training_device": str(dev),
        "training_cpu": platform.processor() or platform.machine(),
        "torch_version": torch.__version__,
        "chosen_step": best_step,
        "selection_rule": "highest minimum per-class validation accuracy; ties: lower validation loss",
        "weights_dtype": "float16",
        "validation": {"seed": data.VALIDATION_SEED, "n_per_class": recipe.validation_per_class, **val_eval},
        "test": {"seed": data.TEST_SEED, "n_per_class": recipe.test_per_class, **test_eval},
        "test_strings_seen_in_training": sum(x in seen_held_out for x in test.strings) / len(test),
        "curve": curve,
    }
    write_checkpoint(NAME, model.state_dict(), CONFIG, metrics, half=True)
    print(
        f"chose step {best_step}; test accuracy per class "
        + ", ".join(f"{k} {v:.4f}" for k, v in test_eval["accuracy"].items())
        + f"; saved to {out}",
        flush=True,
    )
    return metrics
