"""Attention-only transformers for the chapter "TransformerLens and induction heads".

``attn-only-2l``: two attention layers, no MLPs, no LayerNorm. Trained on Shakespeare plus
sequences of repeated random tokens, so it speaks Shakespeare-ish English *and* grows
previous-token heads in layer 0 and induction heads in layer 1 (see docs/decisions/0002).
``attn-only-1l``: the one-layer contrast model, same data and tokenizer. One layer cannot
compose a previous-token head with an induction head, so it cannot do induction.

Full profile: the hub's attention-only models trained on C4 + code
(``NeelNanda/Attn_Only_{1,2}L512W_C4_Code``, TransformerLens's ``attn-only-{1,2}l``).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Int
from torch import Tensor

from interpbook.zoo import phenomena, text_data
from interpbook.zoo.native import build_native, hf_tokenizer, load_native_checkpoint
from interpbook.zoo.registry import ModelSpec, register
from interpbook.zoo.train import BestStep, Stopwatch, adamw, run_recipe, run_steps, write_checkpoint

HUB_REPOS = {
    "attn-only-2l": "NeelNanda/Attn_Only_2L512W_C4_Code",
    "attn-only-1l": "NeelNanda/Attn_Only_1L512W_C4_Code",
}


@dataclass(frozen=True)
class Recipe:
    n_layers: int
    d_model: int = 128
    n_heads: int = 4
    n_ctx: int = 128
    seed: int = 0
    # Phase 1: many small, fast steps on repeated random tokens only. Induction needs a
    # previous-token head and an induction head at once, and forms in a sudden phase change;
    # what brings it on CPU is the *number of steps*, not tokens per step (measured: nothing
    # after 1000 steps of 4k tokens; induction 0.45 after 2800 steps of ~1k tokens, 100 s;
    # 3500 steps left the scores at 0.50 induction / 0.29 previous-token, spread over heads).
    # With blocks anywhere in the context the phase change comes later (~step 5800), and the
    # previous-token head keeps sharpening for thousands of steps after it (best head on text
    # after the text phase: 0.65 with 7000 steps here, 0.78 with 10000; docs/decisions/0002).
    synthetic_steps: int = 10000
    synthetic_batch: int = 16
    min_period: int = 10  # length N of the random block [bos, noise, r_1..r_N, r_1..r_N]
    max_period: int = 50
    # Random-length noise prefix, up to filling the context: the first copy of the block can
    # sit anywhere, so layer 0 needs a previous-token head at *every* position. With a short
    # prefix (at most 10) the first copy always ended before position ~60, and two layer-0
    # heads split the job by position range (one sharp for positions 1-36, one for 1-54,
    # neither beyond), which left no single head above 0.51 on text (docs/decisions/0002).
    max_offset: int | None = None  # None: up to n_ctx - 1 - 2N
    # Phase 2: Shakespeare plus repeated tokens, so the model learns English while keeping
    # the circuit. The shipped step is chosen by a validation score, not the last step.
    text_steps: int = 1500
    batch: int = 16  # text sequences per phase-2 step (plus as many repeated sequences)
    lr: float = 1e-3
    text_lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 50
    embed_std: float = 0.5
    eval_every: int = 100


RECIPES = {
    "attn-only-2l": Recipe(n_layers=2),
    "attn-only-1l": Recipe(n_layers=1),
}


def model_config(r: Recipe) -> dict[str, Any]:
    return {
        "n_layers": r.n_layers,
        "d_model": r.d_model,
        "n_heads": r.n_heads,
        "d_head": r.d_model // r.n_heads,
        "d_vocab": text_data.VOCAB_SIZE,
        "n_ctx": r.n_ctx,
        "attn_only": True,
        "normalization_type": None,
        "seed": r.seed,
    }


def _text_batch(stream: Tensor, n: int, r: Recipe, g: torch.Generator) -> Int[Tensor, "n pos"]:
    """``n`` random windows of the play text, each starting with BOS."""
    starts = torch.randint(0, len(stream) - r.n_ctx, (n,), generator=g)
    windows = [stream[s : s + r.n_ctx - 1] for s in starts.tolist()]
    if n == 0:  # synthetic-only steps of the curriculum
        return torch.zeros(0, r.n_ctx, dtype=torch.long)
    windows = torch.stack(windows)
    return torch.cat([torch.zeros(n, 1, dtype=torch.long), windows], dim=1)


def _repeat_batch(n: int, r: Recipe, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` sequences ``[bos, noise, r_1..r_N, r_1..r_N]`` (one N and one noise length per
    batch, both random), and a loss mask that keeps only the second copy (after its first
    token): random tokens are unpredictable, and training on them would teach the model a
    uniform unigram distribution that hurts its English."""
    period = int(torch.randint(r.min_period, r.max_period + 1, (1,), generator=g))
    room = r.n_ctx - 1 - 2 * period
    max_offset = room if r.max_offset is None else min(r.max_offset, room)
    offset = int(torch.randint(0, max_offset + 1, (1,), generator=g))
    low = phenomena.N_SPECIAL
    noise = torch.randint(low, text_data.VOCAB_SIZE, (n, offset), generator=g)
    block = torch.randint(low, text_data.VOCAB_SIZE, (n, period), generator=g)
    toks = torch.cat([torch.zeros(n, 1, dtype=torch.long), noise, block, block], dim=1)
    mask = torch.zeros(n, toks.shape[1] - 1, dtype=torch.bool)
    mask[:, 1 + offset + period :] = True  # mask[:, j] is the prediction of token j+1
    return toks, mask


def _masked_loss(model: Any, tokens: Tensor, mask: Tensor) -> Tensor:
    logits = model(tokens)
    losses = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
    )
    return losses[mask.reshape(-1)].mean()


def _rescale_embeddings(model: Any, r: Recipe) -> None:
    """Re-draw token and position embeddings with std ``r.embed_std``.

    The GPT-2 init (std 0.8/sqrt(d_model)) assumes LayerNorm rescales the residual stream
    before each attention layer. Without LayerNorm the residual norm is ~1, so attention
    scores start ~100x too small, their gradients vanish (they are bilinear in W_Q and W_K),
    and the heads stay uniform for hundreds of steps. Embeddings of std ~0.5 fix that.
    """
    g = torch.Generator().manual_seed(r.seed + 17)
    with torch.no_grad():
        for w in (model.embed.W_E, model.pos_embed.W_pos):
            w.copy_(torch.randn(w.shape, generator=g) * r.embed_std)


def _lr(step: int, total: int, base: float, warmup: int) -> float:
    warm = min(1.0, (step + 1) / warmup)
    return base * warm * 0.5 * (1 + math.cos(math.pi * step / total))


@torch.no_grad()
def evaluate(model: Any, val_tokens: Tensor) -> dict[str, Any]:
    """Scores the model selection and metrics.json use (fixed batches, so comparable)."""
    ind = phenomena.model_induction_scores(model, seq_len=50, batch=8, seed=1234)
    prev = phenomena.model_prev_token_scores(model, tokens=val_tokens[:8])
    first, second = phenomena.per_half_loss(model, seq_len=50, batch=8, seed=1234)
    val_loss = phenomena.per_token_loss(model, val_tokens).mean().item()
    return {
        "induction_scores": ind,
        "prev_token_scores": prev,
        "max_induction": ind[-1].max().item(),  # last layer: where induction can happen
        "max_prev_token": prev[0].max().item(),
        "loss_first_half": first,
        "loss_repeated_half": second,
        "val_text_loss": val_loss,
    }


def _selection_score(ev: dict[str, Any], n_layers: int) -> float:
    # 2L: keep the checkpoint whose *best* prev-token and induction heads are both crisp
    # (before the job spreads over several heads), with English loss as a tie-breaker.
    # 1L: no circuit to preserve, keep the best English.
    if n_layers == 1:
        return -ev["val_text_loss"]
    return min(ev["max_induction"], ev["max_prev_token"]) - 0.05 * ev["val_text_loss"]


def train(name: str, device: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Train ``name`` deterministically and save its checkpoint; returns the metrics."""
    return run_recipe(RECIPES[name], _train, name, device, **overrides)


def _train(name: str, r: Recipe, device: str) -> dict[str, Any]:
    tok_json = text_data.train_tokenizer()
    train_stream, val_stream = text_data.token_streams(tok_json)
    g_val = torch.Generator().manual_seed(999)
    val_tokens = _text_batch(val_stream, 16, r, g_val)

    with tempfile.TemporaryDirectory() as tmp:
        tok_path = Path(tmp) / "tokenizer.json"
        tok_path.write_text(tok_json)
        tokenizer = hf_tokenizer(str(tok_path))
    config = model_config(r)
    model = build_native(config, tokenizer=tokenizer, device=device)
    _rescale_embeddings(model, r)
    model.train()
    opt = adamw(model.parameters(), lr=r.lr, betas=(0.9, 0.99), weight_decay=r.weight_decay)
    g = torch.Generator().manual_seed(r.seed + 1)

    best = BestStep()
    history: list[dict[str, Any]] = []
    clock = Stopwatch()
    total = r.synthetic_steps + r.text_steps

    def log_eval(step: int) -> dict[str, Any]:
        model.eval()
        ev = evaluate(model, val_tokens)
        model.train()
        row = {k: round(v, 4) for k, v in ev.items() if isinstance(v, float)}
        history.append({"step": step, "seconds": round(clock.seconds(), 1), **row})
        print(json.dumps(history[-1]), flush=True)
        return ev

    def checkpoint(step: int) -> None:
        if step < r.synthetic_steps:  # phase 1: progress only
            if step % (5 * r.eval_every) == 0:
                log_eval(step)
            return
        # Phase 2: keep the best step by the selection score (never the untrained-on-text one).
        i = step - r.synthetic_steps
        if i % r.eval_every == 0 or i == r.text_steps:
            ev = log_eval(step)
            if i > 0:
                best.offer(_selection_score(ev, r.n_layers), step, model.state_dict(), ev)

    def lr_at(step: int) -> float:
        # The exact float expressions of the shipped run (multiplication order matters).
        if step < r.synthetic_steps:  # constant after warm-up
            return r.lr * min(1.0, (step + 1) / r.warmup)
        return _lr(step - r.synthetic_steps, r.text_steps, r.text_lr, r.warmup)

    def train_step(step: int) -> None:
        if step < r.synthetic_steps:  # phase 1: repeated random tokens only, small fast steps
            rep, rep_mask = _repeat_batch(r.synthetic_batch, r, g)
            loss = _masked_loss(model, rep.to(device), rep_mask.to(device))
        else:  # phase 2: text + repeated tokens
            text = _text_batch(train_stream, r.batch, r, g).to(device)
            rep, rep_mask = _repeat_batch(r.batch, r, g)
            loss = F.cross_entropy(
                model(text)[:, :-1].reshape(-1, text_data.VOCAB_SIZE), text[:, 1:].reshape(-1)
            )
            loss = loss + _masked_loss(model, rep.to(device), rep_mask.to(device))
        loss.backward()

    train_seconds = run_steps(opt, total, train_step, lr_at=lr_at, checkpoint=checkpoint, clock=clock)

    assert best.state is not None and best.step is not None
    best_sd, best_step, ev = best.state, best.step, best.info
    model.load_state_dict(best_sd)
    model.eval()
    ind, prev = ev["induction_scores"], ev["prev_token_scores"]
    samples = [phenomena.sample_text(model, p, 60, seed=s) for s, p in enumerate(SAMPLE_PROMPTS)]
    metrics = {
        "recipe": asdict(r),
        "device": device,
        "train_seconds": round(train_seconds, 1),
        "steps_trained": total,
        "selected_step": best_step,
        "induction_scores": [[round(x, 4) for x in row] for row in ind.tolist()],
        "prev_token_scores": [[round(x, 4) for x in row] for row in prev.tolist()],
        "induction_head": _argmax_head(ind, layer=r.n_layers - 1),
        "prev_token_head": _argmax_head(prev, layer=0),
        "max_induction_score": round(ev["max_induction"], 4),
        "max_prev_token_score": round(ev["max_prev_token"], 4),
        "loss_first_half": round(ev["loss_first_half"], 4),
        "loss_repeated_half": round(ev["loss_repeated_half"], 4),
        "val_text_loss": round(ev["val_text_loss"], 4),
        "samples": {p: s for p, s in zip(SAMPLE_PROMPTS, samples)},
        "english_word_fraction": [round(phenomena.english_word_fraction(s), 3) for s in samples],
        "history": history,
    }
    write_checkpoint(name, best_sd, config, metrics, tokenizer_json=tok_json)
    return metrics


def _argmax_head(scores: Tensor, layer: int) -> str:
    return f"{layer}.{int(scores[layer].argmax())}"


SAMPLE_PROMPTS = ("Ham.\nMy lord,", "King.\nWhat", "First Citizen.\n")


def _load_hub(repo: str):
    def load(device: str):
        from transformer_lens import TransformerBridge

        return TransformerBridge.boot_tl_legacy(repo, device=device)

    return load


for _name, _desc in [
    ("attn-only-2l", "2-layer attention-only model on Shakespeare; previous-token and induction heads"),
    ("attn-only-1l", "1-layer attention-only contrast model on Shakespeare; cannot do induction"),
]:
    register(
        ModelSpec(
            name=_name,
            description=_desc,
            load_default=lambda device, _n=_name: load_native_checkpoint(_n, device=device),
            load_full=_load_hub(HUB_REPOS[_name]),
            hub_name=_name,
            trainer="interpbook.zoo.attn_only:train",
        )
    )
