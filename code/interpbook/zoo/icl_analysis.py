"""The function vectors of ``icl-tasks``, computed once for the pages that use them.

Section 3 of the function-vectors chapter has the learner write the pieces (head outputs at the
final position, patching one head, the top heads, the sum); sections 4 and 5 need the result.
:func:`task_function_vectors` runs section 3's recipe with those exported solutions, so that the
recipe is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interpbook.datasets import icl_tasks as data


@dataclass
class FunctionVectors:
    heads: list[tuple[int, int]]  # (layer, head), by decreasing average indirect effect
    vectors: dict[str, Float[Tensor, " d_model"]]  # task -> function vector
    cie: Float[Tensor, "task layer head"]  # gain in P(answer) when the head's clean mean is patched in
    mean_outputs: Float[Tensor, "task layer head d_model"]  # mean head outputs on clean prompts


def task_function_vectors(lm, tokenizer, n: int = 30, k: int = 3, corruption: str = "random_labels"
                          ) -> FunctionVectors:
    """Section 3's recipe: mean head outputs at the final position of ``n`` clean 5-shot prompts
    per task; each head's causal indirect effect (its task's clean mean patched into ``n``
    corrupted prompts, the gain in the right answer's probability, averaged over prompts and
    tasks); each task's vector is the sum of the mean outputs of the ``k`` heads with the
    largest effect. ``corruption``: ``"random_labels"`` or ``"shuffle_labels"``."""
    from interpbook.solutions.function_vectors.function_vector import (
        function_vector,
        head_outputs,
        patch_head,
        top_heads,
    )

    if corruption not in ("random_labels", "shuffle_labels"):
        raise ValueError(f"corruption must be 'random_labels' or 'shuffle_labels', got {corruption!r}")
    tasks = data.TASKS
    cfg = lm.config
    clean = [p for t in tasks for p in data.sample_prompts(t, n, 5)[0]]
    corrupt = {t: data.sample_prompts(t, n, 5, **{corruption: True}) for t in tasks}
    prompts = [p for t in tasks for p in corrupt[t][0]]
    answers = torch.tensor(tokenizer.convert_tokens_to_ids([a for t in tasks for a in corrupt[t][1]]))
    mean_out = head_outputs(lm, clean).reshape(len(tasks), n, cfg.n_layer, cfg.n_head, -1).mean(1)
    with lm.trace(prompts):
        probs = lm.lm_head.output[:, -1].softmax(-1)
        base = probs[torch.arange(len(prompts)), answers].save()
    task_of = torch.arange(len(tasks)).repeat_interleave(n)
    cie = torch.zeros(len(tasks), cfg.n_layer, cfg.n_head)
    for layer in range(cfg.n_layer):
        for head in range(cfg.n_head):
            p = patch_head(lm, prompts, answers, mean_out[task_of, layer, head], layer, head)
            cie[:, layer, head] = (p - base).reshape(len(tasks), n).mean(1).cpu()
    heads = top_heads(cie.mean(0), k)
    vectors = {t: function_vector(mean_out[i], heads) for i, t in enumerate(tasks)}
    return FunctionVectors(heads, vectors, cie, mean_out)
