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

import copy
import math
import platform
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from interpbook.datasets import brackets as data
from interpbook.zoo import checkpoints
from interpbook.zoo.native import build_native, load_native_checkpoint
from interpbook.zoo.registry import ModelSpec, register

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

# The training recipe. `interpbook train brackets-classifier` runs exactly this.
RECIPE: dict[str, Any] = {
    "steps": 3000,
    "batch_size": 128,
    "length_chunks": 2,  # forward each batch in 2 length-sorted chunks
    "lr": 2e-3,
    "min_lr_fraction": 0.05,  # cosine decay to 5 % of lr
    "warmup_steps": 100,
    "weight_decay": 0.01,
    "betas": (0.9, 0.98),
    "grad_clip": 1.0,
    "eval_every": 100,
    "validation_per_class": 1000,
    "test_per_class": 1000,
    "train_seed": data.TRAIN_SEED,
    "threads": 1,
}


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
def _lr_factor(step: int, recipe: dict[str, Any]) -> float:
    warm, total, floor = recipe["warmup_steps"], recipe["steps"], recipe["min_lr_fraction"]
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def train(name: str = NAME, device: str | None = None, steps: int | None = None) -> dict[str, Any]:
    """Train from scratch, keep the step with the best validation score, ship it.

    The checkpoint chosen is the evaluated step with the highest *minimum* per-class
    validation accuracy (ties: lower validation loss), not the last step: the accuracy on the
    rarest hard negatives swings from step to step. Weights are stored in half precision;
    the reported test metrics are measured on the stored weights, reloaded.
    """
    if name != NAME:
        raise ValueError(f"This trainer only trains {NAME!r}, not {name!r}.")
    recipe = dict(RECIPE)
    if steps is not None:
        recipe["steps"] = steps
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    old_threads = torch.get_num_threads()
    torch.set_num_threads(recipe["threads"])  # shared CPUs; also makes runs repeatable
    try:
        return _train(recipe, dev)
    finally:
        torch.set_num_threads(old_threads)


def _train(recipe: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    torch.manual_seed(recipe["train_seed"])
    model = build_native(CONFIG, device=dev)
    # The bridge's wrapped native module: same parameters, without the per-call hook plumbing
    # (faster to train through; the saved state dict is the bridge's).
    net = model.original_model
    net.train()
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=recipe["lr"],
        betas=tuple(recipe["betas"]),
        weight_decay=recipe["weight_decay"],
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, recipe))

    val = data.validation_set(recipe["validation_per_class"])
    test = data.test_set(recipe["test_per_class"])
    held_out = set(test.strings)
    seen_held_out: set[str] = set()

    batches = data.training_batches(recipe["batch_size"], seed=recipe["train_seed"])
    curve: list[dict[str, Any]] = []
    best: tuple[tuple[float, float], int, dict[str, torch.Tensor]] | None = None
    running = 0.0
    start = time.perf_counter()
    for step in range(1, recipe["steps"] + 1):
        batch = next(batches)
        seen_held_out.update(s for s in batch.strings if s in held_out)
        opt.zero_grad(set_to_none=True)
        # Length-sorted chunks waste less compute on padding; the summed chunk losses give
        # the gradient of the mean loss over the whole batch.
        order = sorted(range(len(batch)), key=lambda i: len(batch.strings[i]))
        chunk = math.ceil(len(batch) / recipe["length_chunks"])
        loss_sum = 0.0
        for c in range(0, len(order), chunk):
            idx = order[c : c + chunk]
            tokens, mask = data.tokenize([batch.strings[i] for i in idx], pad_to=None)
            logits = net(tokens.to(dev), attention_mask=mask.to(dev))[:, data.CLS_POS]
            loss = F.cross_entropy(logits, batch.labels[idx].to(dev), reduction="sum") / len(batch)
            loss.backward()
            loss_sum += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["grad_clip"])
        opt.step()
        sched.step()
        running += loss_sum

        if step % recipe["eval_every"] == 0 or step == recipe["steps"]:
            net.eval()
            ev = evaluate(net, val)
            net.train()
            n = recipe["eval_every"] if step % recipe["eval_every"] == 0 else step % recipe["eval_every"]
            point = {
                "step": step,
                "seconds": round(time.perf_counter() - start, 1),
                "train_loss": running / n,
                "val_loss": ev["loss"],
                "val_accuracy": ev["accuracy"],
                "val_min_accuracy": ev["min_accuracy"],
            }
            running = 0.0
            curve.append(point)
            score = (ev["min_accuracy"], -ev["loss"])
            if best is None or score > best[0]:
                best = (score, step, copy.deepcopy(model.state_dict()))
            worst = min(ev["accuracy"], key=ev["accuracy"].get)
            print(
                f"step {step:5d}  {point['seconds']:6.0f}s  train loss {point['train_loss']:.4f}  "
                f"val loss {ev['loss']:.4f}  val min acc {ev['min_accuracy']:.4f} ({worst})",
                flush=True,
            )
    seconds = time.perf_counter() - start
    assert best is not None
    _, best_step, best_state = best

    model.load_state_dict(best_state)
    out = checkpoints.save_checkpoint(NAME, model.state_dict(), CONFIG, half=True)

    # Measure what ships: reload the stored (half precision) weights.
    shipped = load_native_checkpoint(NAME, device=dev)
    shipped.eval()
    val_eval = evaluate(shipped, val)
    test_eval = evaluate(shipped, test)
    metrics = {
        "model": NAME,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train_command": f"interpbook train {NAME}",
        "recipe": recipe,
        "train_mix": data.TRAIN_MIX,
        "training_seconds": round(seconds, 1),
        "training_device": str(dev),
        "training_cpu": platform.processor() or platform.machine(),
        "torch_version": torch.__version__,
        "chosen_step": best_step,
        "selection_rule": "highest minimum per-class validation accuracy; ties: lower validation loss",
        "weights_dtype": "float16",
        "validation": {"seed": data.VALIDATION_SEED, "n_per_class": recipe["validation_per_class"], **val_eval},
        "test": {"seed": data.TEST_SEED, "n_per_class": recipe["test_per_class"], **test_eval},
        "test_strings_seen_in_training": sum(s in seen_held_out for s in test.strings) / len(test),
        "curve": curve,
    }
    checkpoints.save_checkpoint(NAME, model.state_dict(), CONFIG, metrics=metrics, half=True)
    print(
        f"chose step {best_step}; test accuracy per class "
        + ", ".join(f"{k} {v:.4f}" for k, v in test_eval["accuracy"].items())
        + f"; saved to {out}",
        flush=True,
    )
    return metrics
