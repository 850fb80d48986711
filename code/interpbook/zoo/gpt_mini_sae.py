"""``gpt-mini-sae``: a TopK sparse autoencoder on ``gpt-mini``'s residual stream.

It reads ``blocks.2.hook_resid_pre`` (after two of the four layers: the middle of the model)
on the training plays and is evaluated on the held-out plays (Macbeth, Twelfth Night).

Why TopK (each token keeps its ``k`` largest pre-activations) rather than JumpReLU or an L1
penalty: the sparsity *is* a hyper-parameter, so L0 is exactly ``k`` by construction and no
penalty coefficient has to be swept on a CPU budget; there is no L1 shrinkage of the kept
activations; and the superposition chapter's last section already has the learner write
``topk_activation``. Dead latents, TopK's weak spot, get the auxiliary "AuxK" loss: the
latents that have not fired for a while are asked to reconstruct what the live ones missed.

Position 0 (BOS) is left out of training, evaluation and splicing: it is the same vector in
every window, and an SAE would spend a latent on it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from interpbook.zoo import checkpoints, phenomena, text_data
from interpbook.zoo.gpt_mini import held_out_tokens, text_windows
from interpbook.zoo.registry import ModelSpec, register
from interpbook.zoo.train import Stopwatch, run_recipe, run_steps, write_checkpoint

NAME = "gpt-mini-sae"
BASE_MODEL = "gpt-mini"


@dataclass(frozen=True)
class Recipe:
    layer: int = 2  # reads blocks.{layer}.hook_resid_pre
    d_sae: int = 2048  # 8 x d_model
    k: int = 32
    n_ctx: int = 128  # windows of the token stream the activations come from
    n_tokens: int = 2**20  # activations collected once, then shuffled for every epoch
    batch: int = 4096
    steps: int = 1500
    lr: float = 1e-3
    warmup: int = 50
    aux_k: int = 256
    aux_coeff: float = 1 / 32
    dead_after: int = 100  # steps without firing before a latent counts as dead (for AuxK)
    eval_windows: int = 256  # held-out windows of n_ctx tokens for the shipped metrics
    seed: int = 0


RECIPE = Recipe()


def hook_name(layer: int = RECIPE.layer) -> str:
    return f"blocks.{layer}.hook_resid_pre"


class TopKSAE(nn.Module):
    """``x -> f = TopK(ReLU((x - b_dec) W_enc + b_enc)) -> f W_dec + b_dec``.

    ``W_dec`` rows have unit norm (the trainer renormalises after each step), so a latent's
    activation is the length of its direction in the reconstruction.
    """

    def __init__(self, d_in: int, d_sae: int, k: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        W_dec = torch.randn(d_sae, d_in, generator=g)
        W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.k = k

    @property
    def d_in(self) -> int:
        return self.W_dec.shape[1]

    @property
    def d_sae(self) -> int:
        return self.W_dec.shape[0]

    def pre_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def topk(self, pre: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_sae"]:
        """Keep the ``k`` largest of ``ReLU(pre)``, zero the rest."""
        top = torch.relu(pre).topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        return self.topk(self.pre_acts(x))

    def decode(self, f: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        return f @ self.W_dec + self.b_dec

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        return self.decode(self.encode(x))


@torch.no_grad()
def residual_stream(model: Any, tokens: Int[Tensor, "batch pos"], layer: int = RECIPE.layer,
                    chunk: int = 64) -> Float[Tensor, "batch pos d_model"]:
    """The residual stream before block ``layer`` (``blocks.{layer}.hook_resid_pre``; for
    ``layer == n_layers``, after the last block) for every token, BOS included. Computed in
    chunks, stopping at ``layer`` so that nothing after it runs."""
    n_layers = model.cfg.n_layers
    if not 0 <= layer <= n_layers:
        raise ValueError(f"layer must be between 0 and {n_layers} (the model has {n_layers} blocks), got {layer}")
    out = []
    last = f"blocks.{n_layers - 1}.hook_resid_post"
    for i in range(0, len(tokens), chunk):
        t = tokens[i : i + chunk].to(model.cfg.device)
        if layer < n_layers:
            out.append(model(t, stop_at_layer=layer).float().cpu())
        else:
            _, cache = model.run_with_cache(t, names_filter=lambda n: n == last)
            out.append(cache[last].float().cpu())
    return torch.cat(out)


@torch.no_grad()
def collect_activations(model: Any, stream: Tensor, n_tokens: int, n_ctx: int = 128,
                        layer: int = RECIPE.layer, seed: int = 0) -> Float[Tensor, "n d_model"]:
    """``n_tokens`` residual-stream vectors (BOS positions dropped) from random windows."""
    per_window = n_ctx - 1
    n_windows = math.ceil(n_tokens / per_window)
    tokens = text_windows(stream, n_windows, n_ctx, torch.Generator().manual_seed(seed))
    acts = residual_stream(model, tokens, layer)[:, 1:]
    return acts.reshape(-1, acts.shape[-1])[:n_tokens]


def splice_hook(sae: TopKSAE) -> Callable[[Tensor, Any], Tensor]:
    """A forward hook that replaces every non-BOS position by the SAE's reconstruction."""

    def hook(act: Tensor, hook: Any = None) -> Tensor:
        out = act.clone()
        out[:, 1:] = sae(act[:, 1:].float()).to(act.dtype)
        return out

    return hook


def zero_hook(act: Tensor, hook: Any = None) -> Tensor:
    """The baseline for "loss recovered": the residual stream set to zero (BOS kept)."""
    out = act.clone()
    out[:, 1:] = 0.0
    return out


def next_token_loss(model: Any, tokens: Int[Tensor, "batch pos"], fwd_hooks: list | None = None,
                    chunk: int = 32) -> float:
    """Mean next-token loss over every position, optionally with hooks applied, in chunks."""
    losses = [phenomena.per_token_loss(model, tokens[i : i + chunk], fwd_hooks) for i in range(0, len(tokens), chunk)]
    return torch.cat([x.flatten() for x in losses]).mean().item()


@torch.no_grad()
def sae_metrics(model: Any, sae: TopKSAE, tokens: Int[Tensor, "batch pos"] | None = None,
                layer: int = RECIPE.layer) -> dict[str, float]:
    """L0, FVU, dead/dense fractions and CE loss recovered on held-out text."""
    tokens = held_out_tokens() if tokens is None else tokens
    acts = residual_stream(model, tokens, layer)[:, 1:].reshape(-1, sae.d_in)
    f = torch.cat([sae.encode(a) for a in acts.split(8192)])
    recon = sae.decode(f)
    fvu = ((acts - recon) ** 2).sum() / ((acts - acts.mean(0)) ** 2).sum()
    freq = (f > 0).float().mean(0)
    name = hook_name(layer)
    clean = next_token_loss(model, tokens)
    spliced = next_token_loss(model, tokens, [(name, splice_hook(sae))])
    zero = next_token_loss(model, tokens, [(name, zero_hook)])
    return {
        "l0": (f > 0).float().sum(-1).mean().item(),
        "fvu": fvu.item(),
        "dead_fraction": (freq == 0).float().mean().item(),
        "dense_fraction": (freq > 0.1).float().mean().item(),
        "loss_clean": clean,
        "loss_spliced": spliced,
        "loss_zero_ablated": zero,
        "loss_recovered": (zero - spliced) / (zero - clean),
        "n_tokens": int(acts.shape[0]),
    }


def aux_k_loss(sae: TopKSAE, x: Tensor, recon: Tensor, pre: Tensor, dead: Tensor, aux_k: int) -> Tensor:
    """Ask the dead latents (top ``aux_k`` of their pre-activations) to reconstruct the error
    of the live reconstruction; normalised by the error's variance, so it is scale-free."""
    n_dead = int(dead.sum())
    if n_dead == 0:
        return x.new_zeros(())
    k = min(aux_k, n_dead)
    masked = torch.where(dead, torch.relu(pre), torch.zeros_like(pre))
    top = masked.topk(k, dim=-1)
    f_aux = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
    error = (x - recon).detach()
    error_hat = f_aux @ sae.W_dec
    return ((error_hat - error) ** 2).sum(-1).mean() / ((error - error.mean(0)) ** 2).sum(-1).mean()


def train(name: str = NAME, device: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Train ``gpt-mini-sae`` deterministically and save it; returns the metrics."""
    return run_recipe(RECIPE, _train, name, device, **overrides)


def _train(name: str, r: Recipe, device: str) -> dict[str, Any]:
    from interpbook.zoo.registry import load_model

    model = load_model(BASE_MODEL, device=device, shipped=True)
    tok_json = checkpoints.tokenizer_path(BASE_MODEL).read_text()
    train_stream, _ = text_data.token_streams(tok_json)
    clock = Stopwatch()
    acts = collect_activations(model, train_stream, r.n_tokens, r.n_ctx, r.layer, seed=r.seed + 1).to(device)
    collect_seconds = clock.seconds()

    sae = TopKSAE(acts.shape[1], r.d_sae, r.k, seed=r.seed).to(device)
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))  # start the decoder bias at the data's centre
    opt = torch.optim.Adam(sae.parameters(), lr=r.lr)
    g = torch.Generator().manual_seed(r.seed + 2)
    since_fired = torch.zeros(r.d_sae, dtype=torch.long, device=device)
    data = {"order": torch.randperm(len(acts), generator=g).to(device), "cursor": 0}
    history: list[dict[str, Any]] = []
    last: dict[str, float] = {}

    def normalise_decoder() -> None:
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True)

    def train_step(step: int) -> None:
        nonlocal since_fired
        normalise_decoder()  # after the previous update: decoder rows stay unit vectors
        if data["cursor"] + r.batch > len(acts):  # a new epoch, a new shuffle
            data["order"], data["cursor"] = torch.randperm(len(acts), generator=g).to(device), 0
        x = acts[data["order"][data["cursor"] : data["cursor"] + r.batch]]
        data["cursor"] += r.batch
        pre = sae.pre_acts(x)  # kept: the auxiliary loss reads the dead latents' pre-activations
        f = sae.topk(pre)
        recon = sae.decode(f)
        fvu = ((recon - x) ** 2).sum(-1).mean() / ((x - x.mean(0)) ** 2).sum(-1).mean()
        since_fired = torch.where((f > 0).any(0), torch.zeros_like(since_fired), since_fired + 1)
        dead = since_fired >= r.dead_after
        aux = aux_k_loss(sae, x, recon, pre, dead, r.aux_k)
        (fvu + r.aux_coeff * aux).backward()
        last.update(fvu=fvu.item(), aux=aux.item(), dead=int(dead.sum()))

    def checkpoint(step: int) -> None:
        if step and (step % 250 == 0 or step == r.steps):
            row = {"step": step, "seconds": round(clock.seconds(), 1), "train_fvu": round(last["fvu"], 4),
                   "aux": round(last["aux"], 4), "dead": last["dead"]}
            history.append(row)
            print(json.dumps(row), flush=True)

    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / r.warmup)
        return r.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / r.steps)))

    train_seconds = run_steps(opt, r.steps, train_step, lr_at=lr_at, checkpoint=checkpoint, clock=clock)
    normalise_decoder()
    sae.eval()
    # Evaluated on the CPU whatever trained it, so the shipped numbers do not depend on a GPU.
    eval_model = model if device == "cpu" else load_model(BASE_MODEL, device="cpu", shipped=True)
    measured = sae_metrics(eval_model, sae.cpu(), held_out_tokens(r.eval_windows, r.n_ctx), layer=r.layer)
    metrics: dict[str, Any] = {k: round(v, 4) if isinstance(v, float) else v for k, v in measured.items()}
    metrics.update({
        "recipe": asdict(r),
        "device": device,
        "hook": hook_name(r.layer),
        "collect_seconds": round(collect_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "history": history,
    })
    config = {"d_in": sae.d_in, "d_sae": r.d_sae, "k": r.k, "layer": r.layer, "hook": hook_name(r.layer),
              "base_model": BASE_MODEL, "seed": r.seed}
    write_checkpoint(name, {k: v.detach().cpu() for k, v in sae.state_dict().items()}, config, metrics, half=True)
    return metrics


def load_sae(name: str = NAME, device: str | torch.device = "cpu") -> TopKSAE:
    """The shipped SAE, in eval mode."""
    config = checkpoints.load_config(name)
    sae = TopKSAE(config["d_in"], config["d_sae"], config["k"], seed=config["seed"])
    state = checkpoints.load_state_dict(name, device="cpu")
    sae.load_state_dict(state)
    return sae.to(device).eval()


register(
    ModelSpec(
        name=NAME,
        description="TopK sparse autoencoder (2048 latents, k=32) on gpt-mini's layer-2 residual stream",
        load_default=lambda device: load_sae(NAME, device=device),
        trainer="interpbook.zoo.gpt_mini_sae:train",
    )
)
