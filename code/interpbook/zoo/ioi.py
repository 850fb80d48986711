"""``ioi-toy``: a small book-trained model for indirect object identification (IOI).

The IOI task (Wang et al. 2022, https://arxiv.org/abs/2211.00593): in
"When Mary and John went to the store, John gave a drink to", the next word should be the
*indirect object* (IO) "Mary", not the repeated *subject* (S) "John".

This module holds the model: the registry entry ``ioi-toy`` (default profile: the shipped
checkpoint; full profile: GPT-2 small), the nine training recipes of the variant study
(:data:`VARIANTS`; the shipped one is :data:`SHIPPED_VARIANT`), :func:`train`, which
regenerates the checkpoint deterministically, and :func:`compare_variants`, which re-runs the
study. The prompts and vocabulary live in :mod:`interpbook.datasets.ioi` and the scoring and
analysis helpers in :mod:`interpbook.zoo.ioi_analysis`: import them from there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from interpbook.datasets.ioi import PAD_ID, VOCAB, tokenizer_json, training_examples
from interpbook.zoo import checkpoints
from interpbook.zoo.ioi_analysis import circuit_summary, evaluate
from interpbook.zoo.registry import ModelSpec, register
from interpbook.zoo.train import adamw, run_steps, training_run, write_checkpoint

MODEL_NAME = "ioi-toy"

BASE_CONFIG: dict[str, Any] = dict(
    n_layers=3, d_model=64, n_heads=4, d_head=16, d_mlp=256, d_vocab=len(VOCAB), n_ctx=32,
    attn_only=True, normalization_type=None, act_fn="gelu", positional_embedding_type="standard",
    seed=0,
)


@dataclass(frozen=True)
class Recipe:
    """One training recipe of the variant study (all share the data generator and seeds)."""

    name: str
    about: str
    steps: int
    batch: int = 64
    # "lm": next-token loss on every position plus the answer term; "answer": answer only.
    loss: str = "lm"
    # Task mixture: kind ("ioi", "owner", "list", "repeat") -> probability.
    mix: dict[str, float] = field(default_factory=lambda: {"ioi": 1.0}, hash=False)
    varied_actions: bool = False  # two thirds of the IOI prompts swap in a verb phrase of ACTIONS
    config: dict[str, Any] = field(default_factory=dict, hash=False)  # overrides of BASE_CONFIG
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_fraction: float = 0.05  # linear decay, floored at this fraction of lr
    seed: int = 0  # torch (init), Python's random and the training texts

    def model_config(self) -> dict[str, Any]:
        return dict(BASE_CONFIG, **self.config)

    def lr_at(self, step: int) -> float:
        # base * factor, the expression torch's LambdaLR evaluated for the shipped run.
        return self.lr * (min(1.0, (step + 1) / self.warmup) * max(self.min_lr_fraction, 1 - step / self.steps))


_ATTN4X8 = dict(n_layers=4, n_heads=8, d_head=8)
_MIX = {"ioi": 0.5, "owner": 0.2, "list": 0.2, "repeat": 0.1}

# The training variants compared in the model card.
VARIANTS: dict[str, Recipe] = {r.name: r for r in (
    Recipe("A_attn3_ioi_answer", loss="answer", steps=1500, batch=128,
           about="3 attention-only layers x 4 heads, IOI only, loss on the answer token only"),
    Recipe("B_attn3_ioi_lm", steps=800,
           about="3 attention-only layers x 4 heads, IOI only, next-token loss on every position"),
    Recipe("C_attn4x8_ioi_lm", config=_ATTN4X8, steps=800,
           about="4 attention-only layers x 8 heads, IOI only, next-token loss"),
    Recipe("D_mlp3_ioi_lm", config=dict(attn_only=False), steps=800,
           about="3 layers x 4 heads with MLPs, IOI only, next-token loss"),
    Recipe("E_attn3_mix_lm", mix=_MIX, steps=1400,
           about="3 attention-only layers x 4 heads, IOI mixed with generic name-rich text, next-token loss"),
    Recipe("F_attn4x8_varied_lm", config=_ATTN4X8, steps=1500, varied_actions=True,
           about="4 attention-only layers x 8 heads, IOI with varied verb phrases, next-token loss"),
    Recipe("B2_attn3_ioi_lm_long", steps=2500, about="as B, trained for 2500 steps"),
    Recipe("G_attn3_varied_lm", steps=2500, varied_actions=True,
           about="3 attention-only layers x 4 heads, IOI with varied verb phrases, next-token loss"),
    Recipe("C2_attn4x8_ioi_lm_long", config=_ATTN4X8, steps=1500, about="as C, trained for 1500 steps"),
)}
SHIPPED_VARIANT = "F_attn4x8_varied_lm"

# The roles found in the shipped checkpoint (see the model card for the evidence); the tests
# check that the shipped weights still behave this way.
SHIPPED_CIRCUIT: dict[str, Any] = {
    # At END, attends to the most recent name (S2 in IOI prompts) and writes it into END's
    # residual stream; little direct effect, large effect through later heads' queries.
    "s_inhibition": [(0, 6)],
    # At END, attends to IO more than to S1 (but only when 0.6 is present); writes IO into
    # the END residual stream rather than directly to the logits.
    "name_mover": (1, 7),
    # At END, attends to S2, and has the largest direct contribution to logit(IO) - logit(S),
    # mostly by raising the IO (measured against the average name), not by lowering S.
    "s_mover": (3, 5),
}


def _fit(r: Recipe, device: str, log_every: int) -> tuple[Any, dict[str, Any], float]:
    """Train ``r`` from scratch (inside :func:`training_run`); returns (model, config, seconds)."""
    from interpbook.zoo.native import build_native

    config = r.model_config()
    model = build_native(config, tokenizer=None, device=device)
    tokens, ends, answers = training_examples(r.steps * r.batch, r.mix, seed=r.seed,
                                              varied_actions=r.varied_actions)
    opt = adamw(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    model.train()

    def step(s: int) -> None:
        sl = slice(s * r.batch, (s + 1) * r.batch)
        width = int(ends[sl].max()) + 2  # the longest prompt plus its answer
        seq, e, y = tokens[sl, :width].to(device), ends[sl].to(device), answers[sl].to(device)
        logits = model(seq[:, :-1])
        # The answer (IO) is always scored; "lm" recipes also score every other next token.
        loss = F.cross_entropy(logits[torch.arange(len(e), device=device), e], y)
        if r.loss == "lm":
            target = seq[:, 1:].masked_fill(seq[:, 1:] == PAD_ID, -100)
            loss = loss + F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)
        loss.backward()
        if log_every and (s % log_every == 0 or s == r.steps - 1):
            print(f"[{r.name}] step {s:5d} loss {loss.item():.4f}", flush=True)

    seconds = run_steps(opt, r.steps, step, lr_at=r.lr_at)
    model.eval()
    return model, config, seconds


def train_variant(
    recipe: Recipe | str, device: str = "cpu", log_every: int = 250
) -> tuple[Any, dict[str, Any], float, dict[str, Any]]:
    """Train one recipe from scratch and measure it: (model, config, seconds, results).

    ``results`` holds the held-out metrics (:func:`evaluate`) and ``circuit``
    (:func:`circuit_summary`), measured on the same single thread as training.
    """
    r = VARIANTS[recipe] if isinstance(recipe, str) else recipe
    with training_run(r.seed, threads=1, python_seed=r.seed):
        model, config, seconds = _fit(r, device, log_every)
        results = evaluate(model)
        results["circuit"] = circuit_summary(model)
    return model, config, seconds, results


def train(name: str = MODEL_NAME, device: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Regenerate the shipped checkpoint (recipe :data:`SHIPPED_VARIANT`) deterministically.

    ``overrides`` replace recipe fields (e.g. ``steps=30`` for a quick check).
    """
    device = device or "cpu"
    r = replace(VARIANTS[SHIPPED_VARIANT], **overrides)
    model, config, seconds, results = train_variant(r, device=device)
    circuit = results.pop("circuit")
    metrics = dict(results)
    metrics.update(
        variant=r.name,
        variant_about=r.about,
        train_seconds=round(seconds, 1),
        train_device=device,
        train_steps=r.steps,
        batch_size=r.batch,
        loss=r.loss,
        train_mix=dict(r.mix),
        circuit=circuit,
    )
    old = checkpoints.checkpoint_dir(name) / "metrics.json"
    if old.exists():  # keep the variant study (compare_variants) and its note across re-training
        prev = json.loads(old.read_text())
        metrics.update({k: prev[k] for k in ("variants", "variants_note") if k in prev})
    write_checkpoint(name, model.state_dict(), config, metrics, tokenizer_json=tokenizer_json())
    return metrics


def compare_variants(variants: Sequence[str] | None = None, write: bool = True) -> dict[str, Any]:
    """Train each variant, measure accuracy and circuit summary; store under "variants"."""
    results = {}
    for v in variants or list(VARIANTS):
        _, _, seconds, r = train_variant(v)
        circuit = r.pop("circuit")
        r.update(about=VARIANTS[v].about, train_seconds=round(seconds, 1),
                 steps=VARIANTS[v].steps, circuit=circuit)
        results[v] = r
        print(json.dumps({v: {k: x for k, x in r.items() if k != "circuit"}}, indent=1), flush=True)
    if write:
        path = checkpoints.checkpoint_dir(MODEL_NAME) / "metrics.json"
        if path.exists():
            m = json.loads(path.read_text())
            m.setdefault("variants", {}).update(results)
            path.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    return results


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def _load_default(device: str):
    from interpbook.zoo.native import load_native_checkpoint

    return load_native_checkpoint(MODEL_NAME, device=device)


def _load_full(device: str):
    from transformer_lens import TransformerBridge

    return TransformerBridge.boot_transformers("gpt2", device=device)


register(
    ModelSpec(
        name=MODEL_NAME,
        description="4-layer attention-only word-level model trained on IOI sentences",
        load_default=_load_default,
        load_full=_load_full,
        hub_name="gpt2",
        trainer="interpbook.zoo.ioi:train",
    )
)
