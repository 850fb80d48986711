"""Small measurements of the phenomena the attention-only models show.

The tests and the training metrics use these. The chapter asks learners to write their own
detectors, so these stay plain: one forward pass, one pattern average each.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

N_SPECIAL = 3  # token ids 0, 1, 2 are <|bos|>, <|pad|>, <|unk|> in the book tokenizers


def _bos_id(model: Any) -> int:
    tok = getattr(model, "tokenizer", None)
    bos = getattr(tok, "bos_token_id", None) if tok is not None else None
    return int(bos) if bos is not None else 0


def repeated_tokens(
    model_or_vocab: Any, seq_len: int = 50, batch: int = 8, seed: int = 0
) -> Int[Tensor, "batch 1+2*seq_len"]:
    """``[bos, r_1..r_N, r_1..r_N]`` with uniformly random non-special tokens ``r``."""
    if isinstance(model_or_vocab, int):
        d_vocab, bos = model_or_vocab, 0
    else:
        d_vocab, bos = model_or_vocab.cfg.d_vocab, _bos_id(model_or_vocab)
    g = torch.Generator().manual_seed(seed)
    half = torch.randint(N_SPECIAL, d_vocab, (batch, seq_len), generator=g)
    bos_col = torch.full((batch, 1), bos, dtype=torch.long)
    return torch.cat([bos_col, half, half], dim=1)


def _patterns(model: Any, tokens: Tensor) -> list[Float[Tensor, "batch head q k"]]:
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=lambda n: n in names)
    return [cache[n].float().cpu() for n in names]


def model_induction_scores(
    model: Any, seq_len: int = 50, batch: int = 8, seed: int = 0
) -> Float[Tensor, "n_layers n_heads"]:
    """Mean attention from each token of the second repeat to the token right after its
    earlier copy (position ``q - seq_len + 1``)."""
    tokens = repeated_tokens(model, seq_len, batch, seed)
    q = torch.arange(seq_len + 1, 2 * seq_len + 1)  # the second repeat
    k = q - seq_len + 1
    return torch.stack([p[:, :, q, k].mean(dim=(0, 2)) for p in _patterns(model, tokens)])


def prev_token_by_query(
    model: Any, tokens: Int[Tensor, "batch pos"] | None = None, text: str | None = None
) -> Float[Tensor, "n_layers n_heads pos-1"]:
    """Attention from query position ``q`` to ``q - 1`` for ``q = 1..pos-1``, averaged over the
    batch, on natural text (pass token ids, or text, or neither for a built-in passage)."""
    if tokens is None:
        tokens = model.to_tokens(text if text is not None else SAMPLE_PASSAGE)
    q = torch.arange(1, tokens.shape[-1])
    return torch.stack([p[:, :, q, q - 1].mean(dim=0) for p in _patterns(model, tokens)])


def model_prev_token_scores(
    model: Any, tokens: Int[Tensor, "batch pos"] | None = None, text: str | None = None
) -> Float[Tensor, "n_layers n_heads"]:
    """Mean attention from each token to the one just before it (see ``prev_token_by_query``).
    Position 0 (BOS) is skipped: there the only key is itself."""
    return prev_token_by_query(model, tokens, text).mean(dim=-1)


def per_token_loss(model: Any, tokens: Int[Tensor, "batch pos"],
                   fwd_hooks: list | None = None) -> Float[Tensor, "batch pos-1"]:
    """Loss of predicting token ``i+1`` at position ``i`` (with ``fwd_hooks`` applied, if any)."""
    with torch.no_grad():
        t = tokens.to(model.cfg.device)
        logits = (model.run_with_hooks(t, fwd_hooks=fwd_hooks) if fwd_hooks else model(t)).float().cpu()
    logp = F.log_softmax(logits[:, :-1], dim=-1)
    return -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def per_half_loss(
    model: Any, seq_len: int = 50, batch: int = 8, seed: int = 0
) -> tuple[float, float]:
    """(mean loss on the first random half, mean loss on the repeated half).

    The first token of the repeat (``r_1`` after ``r_N``) is left out: nothing predicts it.
    """
    tokens = repeated_tokens(model, seq_len, batch, seed)
    loss = per_token_loss(model, tokens)  # loss[:, i] predicts token i+1
    first = loss[:, 0:seq_len].mean().item()  # targets r_1..r_N of the first half
    second = loss[:, seq_len + 1 :].mean().item()  # targets r_2..r_N of the repeat
    return first, second


def sample_text(
    model: Any, prompt: str, n_tokens: int = 60, seed: int = 0, temperature: float = 0.8
) -> str:
    """Sample a continuation of ``prompt`` (returned without the prompt), reproducibly."""
    g = torch.Generator().manual_seed(seed)
    tokens = model.to_tokens(prompt).cpu()
    start = tokens.shape[1]
    with torch.no_grad():
        for _ in range(n_tokens):
            window = tokens[:, -model.cfg.n_ctx :]
            logits = model(window.to(model.cfg.device))[0, -1].float().cpu()
            probs = F.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=g)
            tokens = torch.cat([tokens, nxt[None]], dim=1)
    return model.to_string(tokens[0, start:])


def english_word_fraction(text: str) -> float:
    """Fraction of the words in ``text`` that are in a list of ~500 common English and
    Shakespearean words. Random subword soup scores near 0; real play text about 0.7."""
    words = [w.strip("'").lower() for w in re.findall(r"[A-Za-z']+", text)]
    words = [w for w in words if w]
    if not words:
        return 0.0
    return sum(w in COMMON_WORDS for w in words) / len(words)


SAMPLE_PASSAGE = (
    "Now is the winter of our discontent made glorious summer by this sun of York; "
    "and all the clouds that lour'd upon our house in the deep bosom of the ocean buried. "
    "Friends, Romans, countrymen, lend me your ears; I come to bury Caesar, not to praise him. "
    "The evil that men do lives after them; the good is oft interred with their bones."
)

# Long enough to fill a 128-token context in the book tokenizer (public-domain lines).
LONG_PASSAGE = SAMPLE_PASSAGE + (
    " O Romeo, Romeo, wherefore art thou Romeo? Deny thy father and refuse thy name; or if thou "
    "wilt not, be but sworn my love, and I'll no longer be a Capulet. All the world's a stage, "
    "and all the men and women merely players; they have their exits and their entrances, and "
    "one man in his time plays many parts. If music be the food of love, play on; give me excess "
    "of it, that, surfeiting, the appetite may sicken, and so die."
)

COMMON_WORDS = frozenset(
    """
    a about above after again against all alone also am an and another any are arm arms art as
    at away ay back bad be bear bed been before being believe best better between blood body
    both break bring brother brought but by call came can cannot cause child come comes could
    country course cousin cry dare daughter day days dead dear death did die do does done doth
    down dream duke earth eat else end enough even ever every eye eyes face fair faith false
    father fear fellow few find fire first fly follow fool for fortune forth free friend friends
    from full gave gentle gentleman get give given go god gods going gold gone good grace great
    grief had hand hands hast hath have he head hear heard heart heaven heavens hence her here
    high him himself his hold home honest honour hope house how i if ill in is it its keep kill
    kind king knave know known lady land last lay leave less let life light like little live long
    look lord lords love made make man many marry master may me mean men might mind mine more
    most mother much must my myself name nay ne'er never new night no noble none nor not nothing
    now o of off oh old on once one only or other our out own pardon part peace people poor power
    pray prince queen rather read red rest rich right rise said same say see seem seen self send
    set shall she should show sir sleep so some something son soul speak spirit stand state still
    stay such sure swear sweet take tears tell than thank that the thee their them then there
    these they thine thing things think this those thou though thought three thus thy till time
    to too tongue true truth two unto up upon us very was way we well were what when where which
    while white who whom whose why wife will wind wise wish with within without woman women word
    words world would ye yea yes yet you young your yourself
    again ah alas anon art awhile aye bid blessed brave came canst come'st could'st didst dost
    e'er ere fain farewell forsooth gentlemen good-morrow hadst haply hark hither hath hie kinsman
    liege mayst methinks mistress morrow mine naught ne'er nought oft perchance prithee quoth
    sirrah shalt sith thence thither thyself 'tis 'twas twere wast wherefore whence whither wilt
    withal wouldst yon yonder
    enter exit exeunt scene act
    air answer ask bid blood bloody body bound call care choose close cold crown dark deed deeds
    desire done door draw each eat else fall fault fell fight fine fit flesh foot forget found
    gentle glad hate heavy hell help hither honour hour hours hundred husband indeed itself
    judge just justice kingdom kiss knew laugh law lie lies lips lost loves loving majesty
    matter meet mercy met mine money morning mouth move nature near need news next nine noble
    oath open order pass patience place play please poor pride proud put quick rage reason
    royal run sad sea second seek sense serve shame sick side sight sin sing slave small soft
    sorrow sort speak spoke stars stone stood story strange strength strike strong sun sword
    tale talk ten thousand throw told tomorrow took town traitor treason turn twenty uncle
    under use villain virtue voice wake walk want war warrant watch water weep welcome went
    wherein whole wit woe wonder work worse worth wrong year years yield
    """.split()
)
