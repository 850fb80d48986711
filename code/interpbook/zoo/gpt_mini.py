"""``gpt-mini``: the book's first language model with MLPs and LayerNorm.

GPT-2's architecture at a small size (pre-LayerNorm blocks, GELU MLPs, learned positions),
trained on the same Shakespeare plays and the same 2048-token tokenizer as the attention-only
models, so learners can compare them token for token. The chapter "A transformer from scratch"
re-implements it; later chapters probe, steer and train SAEs on it.

Untied unembedding: TransformerLens keeps ``W_U`` as its own matrix whatever the hub model did,
so an untied model is what the learner's re-implementation and the hooks see either way, and
at this size the extra 0.5 M parameters cost nothing noticeable per step.

A fifth of every batch is repeated random tokens (loss on the repeat only, weight 0.25), as for
the attention-only models. In the shipped run this was *not* enough: no induction head formed
(best score 0.016; decision 0007 records the run and what to try next).

Full profile: GPT-2 small (``gpt2``) from the hub.
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

NAME = "gpt-mini"
HUB_NAME = "gpt2"


@dataclass(frozen=True)
class Recipe:
    n_layers: int = 4
    d_model: int = 256
    n_heads: int = 8
    d_mlp: int = 1024
    n_ctx: int = 256
    seed: int = 0
    # Measured on the 2-core CPU, one thread: ~1.7 s per step of 12 + 4 sequences. For a fixed
    # compute budget, more steps of fewer sequences learn more early on. (A first phase of
    # repeated tokens and [u v u] triples, tried for the induction target, is in decision 0007.)
    steps: int = 2400
    batch: int = 8  # text windows per step
    repeat_batch: int = 2  # repeated-random-token sequences per step
    min_period: int = 10
    max_period: int = 100
    lr: float = 1.5e-3
    min_lr_frac: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 200


RECIPE = Recipe()


def model_config(r: Recipe) -> dict[str, Any]:
    return {
        "n_layers": r.n_layers,
        "d_model": r.d_model,
        "n_heads": r.n_heads,
        "d_head": r.d_model // r.n_heads,
        "d_mlp": r.d_mlp,
        "d_vocab": text_data.VOCAB_SIZE,
        "n_ctx": r.n_ctx,
        "act_fn": "gelu_new",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "seed": r.seed,
    }


def text_windows(stream: Tensor, n: int, n_ctx: int, g: torch.Generator) -> Int[Tensor, "n n_ctx"]:
    """``n`` random windows of the token stream, each ``[bos, t_1 .. t_{n_ctx-1}]``."""
    starts = torch.randint(0, len(stream) - n_ctx, (n,), generator=g)
    windows = torch.stack([stream[s : s + n_ctx - 1] for s in starts.tolist()])
    return torch.cat([torch.zeros(n, 1, dtype=torch.long), windows], dim=1)


def _repeat_batch(n: int, r: Recipe, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``[bos, noise, block, block]`` sequences and a mask keeping the loss on the repeat."""
    period = int(torch.randint(r.min_period, r.max_period + 1, (1,), generator=g))
    room = r.n_ctx - 1 - 2 * period
    offset = int(torch.randint(0, room + 1, (1,), generator=g))
    low = phenomena.N_SPECIAL
    noise = torch.randint(low, text_data.VOCAB_SIZE, (n, offset), generator=g)
    block = torch.randint(low, text_data.VOCAB_SIZE, (n, period), generator=g)
    toks = torch.cat([torch.zeros(n, 1, dtype=torch.long), noise, block, block], dim=1)
    mask = torch.zeros(n, toks.shape[1] - 1, dtype=torch.bool)
    mask[:, 1 + offset + period :] = True  # mask[:, j] is the prediction of token j+1
    return toks, mask


def _lr_factor(step: int, r: Recipe) -> float:
    warm = min(1.0, (step + 1) / r.warmup)
    cos = 0.5 * (1 + math.cos(math.pi * step / r.steps))
    return warm * (r.min_lr_frac + (1 - r.min_lr_frac) * cos)


def held_out_tokens(n_windows: int = 256, n_ctx: int = 128, seed: int = 999) -> Int[Tensor, "n n_ctx"]:
    """Fixed windows ``[bos, ...]`` of the held-out plays (Macbeth, Twelfth Night), in the
    shipped tokenizer: the evaluation text of ``gpt-mini`` and of its SAE."""
    from interpbook.zoo import checkpoints

    tok_json = checkpoints.tokenizer_path("gpt-mini").read_text()
    _, val_stream = text_data.token_streams(tok_json)
    return text_windows(val_stream, n_windows, n_ctx, torch.Generator().manual_seed(seed))


@torch.no_grad()
def held_out_loss(model: Any, n_windows: int = 16, n_ctx: int = 128, seed: int = 999) -> float:
    """Mean next-token loss on fixed windows of the held-out plays (Macbeth, Twelfth Night).

    128-token windows by default: the attention-only models' context, so the two families are
    compared on exactly the same tokens."""
    return phenomena.per_token_loss(model, held_out_tokens(n_windows, n_ctx, seed)).mean().item()


def train(name: str = NAME, device: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Train ``gpt-mini`` deterministically and save its checkpoint; returns the metrics."""
    return run_recipe(RECIPE, _train, name, device, **overrides)


def _train(name: str, r: Recipe, device: str) -> dict[str, Any]:
    tok_json = text_data.train_tokenizer()
    train_stream, val_stream = text_data.token_streams(tok_json)
    val_tokens = text_windows(val_stream, 16, r.n_ctx, torch.Generator().manual_seed(999))
    with tempfile.TemporaryDirectory() as tmp:
        tok_path = Path(tmp) / "tokenizer.json"
        tok_path.write_text(tok_json)
        tokenizer = hf_tokenizer(str(tok_path))
    config = model_config(r)
    model = build_native(config, tokenizer=tokenizer, device=device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(params, lr=r.lr, betas=(0.9, 0.95), weight_decay=r.weight_decay)
    g = torch.Generator().manual_seed(r.seed + 1)

    best = BestStep()
    history: list[dict[str, Any]] = []
    recent: list[float] = []
    clock = Stopwatch()

    def checkpoint(step: int) -> None:
        if step % r.eval_every and step != r.steps:
            return
        model.eval()
        val = phenomena.per_token_loss(model, val_tokens).mean().item()
        ind = phenomena.model_induction_scores(model, seq_len=50, batch=8, seed=1234)
        model.train()
        row = {
            "step": step,
            "seconds": round(clock.seconds(), 1),
            "train_loss": round(sum(recent) / len(recent), 4) if recent else None,
            "val_loss": round(val, 4),
            "max_induction": round(ind.max().item(), 4),
        }
        recent.clear()
        history.append(row)
        print(json.dumps(row), flush=True)
        if step > 0:
            best.offer(-val, step, model.state_dict(), row)

    def train_step(step: int) -> None:
        text = text_windows(train_stream, r.batch, r.n_ctx, g).to(device)
        rep, rep_mask = _repeat_batch(r.repeat_batch, r, g)
        logits = model(text)
        text_loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), text[:, 1:].reshape(-1))
        rep_logits = model(rep.to(device))
        rep_losses = F.cross_entropy(
            rep_logits[:, :-1].reshape(-1, rep_logits.shape[-1]), rep[:, 1:].to(device).reshape(-1),
            reduction="none",
        )
        rep_loss = rep_losses[rep_mask.to(device).reshape(-1)].mean()
        (text_loss + 0.25 * rep_loss).backward()
        recent.append(text_loss.item())

    train_seconds = run_steps(
        opt, r.steps, train_step,
        lr_at=lambda s: r.lr * _lr_factor(s, r),
        grad_clip=r.grad_clip, params=params, checkpoint=checkpoint, clock=clock,
    )
    assert best.state is not None
    model.load_state_dict(best.state)
    model.eval()
    ind = phenomena.model_induction_scores(model, seq_len=50, batch=8, seed=0)
    samples = [phenomena.sample_text(model, p, 60, seed=s) for p in SAMPLE_PROMPTS for s in range(8)]
    fractions = [phenomena.english_word_fraction(s) for s in samples]
    metrics = {
        "recipe": asdict(r),
        "device": device,
        "train_seconds": round(train_seconds, 1),
        "selected_step": best.step,
        "tokens_seen": r.steps * (r.batch + r.repeat_batch) * r.n_ctx,
        "text_tokens_seen": r.steps * r.batch * r.n_ctx,
        "val_loss_256": best.info["val_loss"],
        "held_out_loss_128": round(held_out_loss_from(model, val_stream), 4),
        "induction_scores": [[round(x, 4) for x in row] for row in ind.tolist()],
        "max_induction_score": round(ind.max().item(), 4),
        "english_word_fraction_mean": round(sum(fractions) / len(fractions), 4),
        "samples": {p: phenomena.sample_text(model, p, 60, seed=0) for p in SAMPLE_PROMPTS},
        "history": history,
    }
    write_checkpoint(name, best.state, config, metrics, tokenizer_json=tok_json, half=True)
    return metrics


def held_out_loss_from(model: Any, val_stream: Tensor, n_windows: int = 16, n_ctx: int = 128,
                       seed: int = 999) -> float:
    g = torch.Generator().manual_seed(seed)
    tokens = text_windows(val_stream, n_windows, n_ctx, g)
    return phenomena.per_token_loss(model, tokens).mean().item()


SAMPLE_PROMPTS = ("Ham.\nMy lord,", "King.\nWhat", "First Citizen.\n")


def _load_hub(device: str):
    from transformer_lens import TransformerBridge

    return TransformerBridge.boot_tl_legacy(HUB_NAME, device=device)


register(
    ModelSpec(
        name=NAME,
        description="4-layer GPT-2-architecture model on Shakespeare (LayerNorm, GELU MLPs)",
        load_default=lambda device: load_native_checkpoint(NAME, device=device),
        load_full=_load_hub,
        hub_name=HUB_NAME,
        trainer="interpbook.zoo.gpt_mini:train",
    )
)
