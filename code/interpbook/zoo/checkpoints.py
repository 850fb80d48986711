"""Saving and loading book-trained checkpoints.

A checkpoint is a folder under ``interpbook/checkpoints/<name>/`` holding
``model.safetensors`` (weights), ``config.json`` (the TransformerLens native config),
``tokenizer.json`` (optional, a `tokenizers` tokenizer) and ``metrics.json`` (what the training
run measured on the saved weights; model cards quote it).

``$INTERP_BOOK_CHECKPOINTS`` points saving *and* loading at another root, so a retraining run
can be compared with the shipped files instead of overwriting them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CHECKPOINT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"


class MissingCheckpointError(FileNotFoundError):
    pass


def checkpoint_root() -> Path:
    env = os.environ.get("INTERP_BOOK_CHECKPOINTS")
    return Path(env) if env else CHECKPOINT_ROOT


def checkpoint_dir(name: str) -> Path:
    return checkpoint_root() / name


def save_checkpoint(
    name: str,
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    tokenizer_json: str | None = None,
    half: bool = False,
) -> Path:
    out = checkpoint_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: (v.detach().to("cpu").contiguous().half() if half and v.is_floating_point() else v.detach().to("cpu").contiguous())
        for k, v in state_dict.items()
    }
    save_file(tensors, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    if tokenizer_json is not None:
        (out / "tokenizer.json").write_text(tokenizer_json)
    return out


def _require(path: Path, name: str) -> Path:
    if not path.exists():
        raise MissingCheckpointError(
            f"Checkpoint file {path} for model {name!r} is missing. The default profile needs the "
            f"book-trained checkpoints shipped in the package: reinstall `interpbook`, or "
            f"regenerate it with `interpbook train {name}`."
        )
    return path


def load_state_dict(name: str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    sd = load_file(_require(checkpoint_dir(name) / "model.safetensors", name), device=str(device))
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}


def load_config(name: str) -> dict[str, Any]:
    return json.loads(_require(checkpoint_dir(name) / "config.json", name).read_text())


def load_metrics(name: str) -> dict[str, Any]:
    return json.loads(_require(checkpoint_dir(name) / "metrics.json", name).read_text())


def tokenizer_path(name: str) -> Path:
    return _require(checkpoint_dir(name) / "tokenizer.json", name)
