"""The grokking model: a one-layer transformer trained on modular addition, ``a + b mod p``.

Here: the registration, the training recipe (:class:`Recipe`; ``interpbook train
modular-addition``), the embedding's Fourier summary the trainer records, and loaders for the
shipped final checkpoint, the snapshots taken during training and the training curves. The data
(every pair, and the train/test split) is :mod:`interpbook.datasets.modular_addition`; the
Fourier basis is the grokking chapter's exercise, imported from
:mod:`interpbook.solutions.grokking.fourier_embedding`.

Sequences are three tokens ``a b =``: token ids ``0 .. p-1`` are the numbers, id ``p`` is ``=``.
The model predicts ``(a + b) mod p`` at the last position; its unembedding has ``p`` outputs.

The model is a TransformerLens-native architecture (``TransformerBridge.boot_native``): one
block with attention and a ReLU MLP, no LayerNorm. Training does not run through the bridge:
since the loss only reads the last position, :func:`last_position_logits` computes exactly the
last-position logits of that architecture from the same weight tensors, skipping the MLP and
unembedding at the first two positions and projecting each (position, token) embedding once
(several times faster on a CPU than a bridge forward). The trainer checks that the booted model
reproduces its logits before saving.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from interpbook.datasets.modular_addition import TRAIN_FRACTION, P, dataset
from interpbook.solutions.grokking.fourier_embedding import (
    fourier_basis,
    fourier_coefficients,
    frequency_norms,
    key_frequencies,
)
from interpbook.zoo import checkpoints
from interpbook.zoo.native import build_native, load_native_checkpoint
from interpbook.zoo.registry import ModelSpec, register
from interpbook.zoo.train import Stopwatch, adamw, run_steps, training_run, write_checkpoint

NAME = "modular-addition"

CONFIG: dict[str, Any] = {
    "n_layers": 1,
    "d_model": 128,
    "n_heads": 4,
    "d_head": 32,
    "d_mlp": 512,
    "act_fn": "relu",
    "normalization_type": None,
    "attn_only": False,
    "d_vocab": P + 1,  # numbers 0..p-1 and "="
    "d_vocab_out": P,  # the answer is a number
    "n_ctx": 3,
    "positional_embedding_type": "standard",
    "seed": 0,
}


@dataclass(frozen=True)
class Recipe:
    """Full-batch AdamW with strong weight decay (the grokking setting)."""

    lr: float = 3e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_epochs: int = 10
    epochs: int = 6000
    log_every: int = 10  # curves.json: one point every log_every epochs
    # Snapshots shipped in snapshots.safetensors (half precision): dense early (memorisation),
    # steady through circuit formation and cleanup.
    snapshot_epochs: tuple[int, ...] = (
        0, 50, 100, 200, 400, 600, 800, 1000, 1250, 1500, 1750, 2000, 2250, 2500,
        2750, 3000, 3250, 3500, 4000, 4500, 5000, 6000,
    )
    seed: int = CONFIG["seed"]  # model initialisation (the split has its own DATA_SEED)
    threads: int = 1  # on a CPU: the book's CI runners and our training box are shared

    def lr_at(self, epoch: int) -> float:
        return self.lr * min(1.0, (epoch + 1) / self.warmup_epochs)  # base * factor, as LambdaLR


RECIPE = Recipe()
SNAPSHOT_EPOCHS = RECIPE.snapshot_epochs


# --------------------------------------------------------------------------- Fourier summary


def embedding_fourier_norms(model_or_w_e: torch.nn.Module | torch.Tensor, p: int = P) -> torch.Tensor:
    """Norm of the embedding of the number tokens per frequency ``k = 0 .. (p-1)/2``.

    Takes a model (its ``W_E``) or an embedding matrix ``[d_vocab, d_model]`` (for snapshots,
    ``state_dict["embed.weight"]``). The squares sum to ``||W_E[:p]||^2`` (the basis is
    orthonormal).
    """
    w_e = model_or_w_e.W_E if isinstance(model_or_w_e, torch.nn.Module) else model_or_w_e
    basis, _ = fourier_basis(p)
    return frequency_norms(fourier_coefficients(w_e.detach()[:p].float().cpu(), basis))


def embedding_key_frequencies(
    model_or_w_e: torch.nn.Module | torch.Tensor, share: float = 0.8, p: int = P
) -> tuple[list[int], float]:
    """The fewest frequencies that carry ``share`` of ``W_E``'s squared norm, and their share."""
    norms = embedding_fourier_norms(model_or_w_e, p)
    keys = key_frequencies(norms, share)
    return keys, float(norms[keys].pow(2).sum() / norms.pow(2).sum())


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Loss and accuracy of ``model`` at the last position."""
    device = next(model.parameters()).device
    logits = model(tokens.to(device))[:, -1].double()
    labels = labels.to(device)
    return {
        "loss": float(F.cross_entropy(logits, labels)),
        "accuracy": float((logits.argmax(-1) == labels).float().mean()),
    }


# --------------------------------------------------------------------------- training


def last_position_logits(
    w: dict[str, torch.Tensor], tokens: torch.Tensor, cfg: dict[str, Any] = CONFIG
) -> torch.Tensor:
    """Logits at position 2 of the native model with weights ``w`` (bridge state-dict names).

    A fast path for training and for sweeping snapshots without booting a model each time.
    Same computation as the booted model (causal attention over ``a b =``, ReLU MLP, no
    LayerNorm, unembedding without bias), restricted to what the last position reads.
    """
    n_heads, d_head = cfg["n_heads"], cfg["d_head"]
    batch, seq = tokens.shape
    # Every (position, token) residual is one row of this table; projecting the table and then
    # indexing it equals projecting each sequence's residuals (linear maps act row by row).
    table = w["embed.weight"][None] + w["pos_embed.weight"][:seq, None]  # [seq, d_vocab, d_model]
    pos = torch.arange(seq, device=tokens.device)
    last = table[seq - 1, tokens[:, -1]]
    q = F.linear(table[seq - 1], w["blocks.0.attn.q.weight"], w["blocks.0.attn.q.bias"])
    k = F.linear(table, w["blocks.0.attn.k.weight"], w["blocks.0.attn.k.bias"])
    v = F.linear(table, w["blocks.0.attn.v.weight"], w["blocks.0.attn.v.bias"])
    q = q[tokens[:, -1]].view(batch, n_heads, 1, d_head)
    k = k[pos, tokens].view(batch, seq, n_heads, d_head).transpose(1, 2)
    v = v[pos, tokens].view(batch, seq, n_heads, d_head).transpose(1, 2)
    pattern = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_head), dim=-1)  # last row: no mask
    z = (pattern @ v).reshape(batch, n_heads * d_head)
    mid = last + F.linear(z, w["blocks.0.attn.o.weight"], w["blocks.0.attn.o.bias"])
    hidden = F.relu(F.linear(mid, w["blocks.0.mlp.in.weight"], w["blocks.0.mlp.in.bias"]))
    post = mid + F.linear(hidden, w["blocks.0.mlp.out.weight"], w["blocks.0.mlp.out.bias"])
    return F.linear(post, w["unembed.weight"])


def _first_epoch(epochs: list[int], values: list[float], threshold: float) -> int | None:
    for e, v in zip(epochs, values):
        if v >= threshold:
            return e
    return None


def train(
    name: str = NAME, device: str | None = None, epochs: int | None = None, **overrides: Any
) -> dict[str, Any]:
    """Train the grokking model from scratch and write its checkpoint folder.

    Deterministic on CPU (seeded init, fixed split, full batch). Writes ``model.safetensors``,
    ``config.json``, ``metrics.json``, ``curves.json`` and ``snapshots.safetensors``.
    ``epochs`` and ``overrides`` replace :class:`Recipe` fields.
    """
    if epochs is not None:
        overrides["epochs"] = epochs
    r = replace(RECIPE, **overrides)
    device = device or "cpu"
    with training_run(
        r.seed, threads=r.threads if device == "cpu" else None, deterministic=True, warn_only=True
    ):
        return _train(name, r, device)


def _train(name: str, r: Recipe, device: str) -> dict[str, Any]:
    from safetensors.torch import save_file

    data = dataset()
    model = build_native(CONFIG, device=device)
    # Train the bridge's own tensors (their state-dict names are the checkpoint's keys).
    state = model.state_dict()
    params = {k: v.clone() for k, v in state.items() if k != "unembed.bias"}  # bias: zero buffer
    for v in params.values():
        v.requires_grad_(True)
    opt = adamw(params.values(), lr=r.lr, weight_decay=r.weight_decay, betas=r.betas)

    train_x, train_y = data.train_tokens.to(device), data.train_labels.to(device)
    test_x, test_y = data.test_tokens.to(device), data.test_labels.to(device)
    curves: dict[str, list] = {k: [] for k in ("epoch", "train_loss", "test_loss", "train_acc", "test_acc")}
    snapshots: dict[str, torch.Tensor] = {}
    clock = Stopwatch()

    def log(epoch: int) -> None:
        if not (epoch % r.log_every == 0 or epoch in r.snapshot_epochs):
            return
        with torch.no_grad():
            for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
                logits = last_position_logits(params, x, CONFIG).double()
                loss = float(F.cross_entropy(logits, y))
                curves[f"{split}_loss"].append(float(f"{loss:.5g}"))  # 5 significant digits
                curves[f"{split}_acc"].append(round(float((logits.argmax(-1) == y).float().mean()), 6))
        curves["epoch"].append(epoch)
        if epoch in r.snapshot_epochs:
            for k, v in params.items():
                snapshots[f"{epoch:05d}/{k}"] = v.detach().to("cpu", torch.float16).clone()
        if epoch % 500 == 0:
            print(
                f"epoch {epoch:5d}  train loss {curves['train_loss'][-1]:.3g} acc {curves['train_acc'][-1]:.3f}"
                f"  test loss {curves['test_loss'][-1]:.3g} acc {curves['test_acc'][-1]:.4f}"
                f"  {clock.seconds():.0f} s",
                flush=True,
            )

    def step(epoch: int) -> None:
        logits = last_position_logits(params, train_x, CONFIG)
        # The loss in float64: late in grokking it is tiny, and float32 rounding would decide it.
        loss = F.cross_entropy(logits.double(), train_y)
        loss.backward()

    train_seconds = run_steps(opt, r.epochs, step, lr_at=r.lr_at, checkpoint=log, clock=clock)

    # The booted model must compute what the trainer computed.
    final = {k: v.detach() for k, v in params.items()}
    final["unembed.bias"] = state["unembed.bias"]
    model.load_state_dict(final)
    model.eval()
    with torch.no_grad():
        ref = last_position_logits(final, data.tokens.to(device), CONFIG)
        got = model(data.tokens.to(device))[:, -1]
    max_diff = float((ref - got).abs().max())
    if max_diff > 1e-3:
        raise RuntimeError(f"booted model disagrees with the trainer's forward (max diff {max_diff})")

    train_m = evaluate(model, data.train_tokens, data.train_labels)
    test_m = evaluate(model, data.test_tokens, data.test_labels)
    keys, share = embedding_key_frequencies(model)
    metrics = {
        "p": P,
        "train_fraction": TRAIN_FRACTION,
        "n_train": len(data.train_indices),
        "n_test": len(data.test_indices),
        "epochs": r.epochs,
        "lr": r.lr,
        "weight_decay": r.weight_decay,
        "betas": list(r.betas),
        "train_loss": train_m["loss"],
        "train_accuracy": train_m["accuracy"],
        "test_loss": test_m["loss"],
        "test_accuracy": test_m["accuracy"],
        "first_epoch_train_acc_100": _first_epoch(curves["epoch"], curves["train_acc"], 1.0),
        "first_epoch_test_acc_99": _first_epoch(curves["epoch"], curves["test_acc"], 0.99),
        "first_epoch_test_acc_999": _first_epoch(curves["epoch"], curves["test_acc"], 0.999),
        "key_frequencies": keys,
        "key_frequency_norm_share": share,
        "train_seconds": round(train_seconds, 1),
        "device": device,
        "torch_threads": torch.get_num_threads() if device == "cpu" else None,
        "bridge_max_logit_diff": max_diff,
    }
    out = write_checkpoint(name, model.state_dict(), CONFIG, metrics)
    (out / "curves.json").write_text(json.dumps(curves, separators=(",", ":")) + "\n")
    save_file(snapshots, out / "snapshots.safetensors", metadata={"epochs": json.dumps(list(r.snapshot_epochs))})
    print(json.dumps(metrics, indent=2))
    return metrics


# --------------------------------------------------------------------------- loading


def load_curves(name: str = NAME) -> dict[str, list]:
    """Training curves: ``epoch``, ``train_loss``, ``test_loss``, ``train_acc``, ``test_acc``."""
    path = checkpoints._require(checkpoints.checkpoint_dir(name) / "curves.json", name)
    return json.loads(path.read_text())


def load_snapshot_state_dicts(name: str = NAME) -> list[tuple[int, dict[str, torch.Tensor]]]:
    """``[(epoch, state_dict), ...]`` for the snapshots taken during training (float32)."""
    from safetensors import safe_open

    path = checkpoints._require(checkpoints.checkpoint_dir(name) / "snapshots.safetensors", name)
    by_epoch: dict[int, dict[str, torch.Tensor]] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            epoch, param = key.split("/", 1)
            by_epoch.setdefault(int(epoch), {})[param] = f.get_tensor(key).float()
    zero_bias = torch.zeros(CONFIG["d_vocab_out"])
    for sd in by_epoch.values():
        sd.setdefault("unembed.bias", zero_bias.clone())
    return sorted(by_epoch.items())


def load_snapshots(
    name: str = NAME, device: str = "cpu", epochs: list[int] | None = None
) -> list[tuple[int, torch.nn.Module]]:
    """``[(epoch, model), ...]``: one booted model (eval mode) per training snapshot.

    ``epochs`` picks a subset (each must be a snapshot epoch); booting a model takes a moment,
    so pass it when a few snapshots will do.
    """
    config = checkpoints.load_config(name)
    snaps = load_snapshot_state_dicts(name)
    if epochs is not None:
        have = {e for e, _ in snaps}
        missing = sorted(set(epochs) - have)
        if missing:
            raise ValueError(f"no snapshot at epochs {missing}; snapshots: {sorted(have)}")
        snaps = [(e, sd) for e, sd in snaps if e in set(epochs)]
    out = []
    for epoch, sd in snaps:
        model = build_native(config, device=device)
        model.load_state_dict({k: v.to(device) for k, v in sd.items()})
        model.eval()
        out.append((epoch, model))
    return out


def _load_default(device: str) -> torch.nn.Module:
    return load_native_checkpoint(NAME, device=device)


register(
    ModelSpec(
        name=NAME,
        description=(
            f"1-layer transformer (attention + ReLU MLP, no LayerNorm) that grokked a + b mod {P}; "
            "ships training snapshots and curves"
        ),
        load_default=_load_default,
        load_full=None,
        hub_name=None,
        trainer="interpbook.zoo.modular_addition:train",
    )
)
