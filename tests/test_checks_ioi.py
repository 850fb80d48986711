"""The IOI chapter's checks reject the mistakes a learner would plausibly make.

tests/test_exercises.py already proves that each check fails on its stub and passes on its
solution (it runs the pages). Here each exercise gets one or more *wrong* answers, written as a
learner would write them, with a one-line comment naming the slip; the test pins both that the
check rejects it and that the message points at that slip. One test per section also runs the
exported solutions through the checks, so a wrong fixture shows up as a failing sanity test
rather than as a wrong answer that "passes"."""

from __future__ import annotations

import functools

import pytest
import torch

from interpbook.checks import CheckFailed, leftover_hooks
from interpbook.checks.ioi import activation_patching as ap
from interpbook.checks.ioi import attribution_patching as atp
from interpbook.checks.ioi import faithfulness as fa
from interpbook.checks.ioi import path_patching as pp
from interpbook.checks.ioi import task_and_metric as tm
from interpbook.solutions.ioi import activation_patching as ap_sol
from interpbook.solutions.ioi import attribution_patching as atp_sol
from interpbook.solutions.ioi import faithfulness as fa_sol
from interpbook.solutions.ioi import path_patching as pp_sol
from interpbook.solutions.ioi import task_and_metric as tm_sol
from interpbook.solutions.ioi.task_and_metric import logits_to_logit_diff
from interpbook.zoo import load_model

# ============================================================================================
# Section 1: the task and the metric


def test_task_and_metric_solutions_pass():
    tm.check_logits_to_logit_diff(tm_sol.logits_to_logit_diff)
    tm.check_logit_diff_directions(tm_sol.logit_diff_directions)
    tm.check_residual_to_logit_diff(tm_sol.residual_to_logit_diff)
    tm.check_end_attention(tm_sol.end_attention)


def logit_diff_last_position(logits, ds):
    # Mistake: reads every prompt at position -1, which is padding for the shorter prompts.
    last = logits[:, -1]
    b = torch.arange(len(ds))
    return last[b, ds.io_tok] - last[b, ds.s_tok]


def logit_diff_s_minus_io(logits, ds):
    # Mistake: subtracts the wrong way round.
    b = torch.arange(len(ds))
    end = logits[b, ds.end]
    return end[b, ds.s_tok] - end[b, ds.io_tok]


def logit_diff_before_end(logits, ds):
    # Mistake: off by one, as if the prediction for the answer were made one token earlier.
    b = torch.arange(len(ds))
    end = logits[b, ds.end - 1]
    return end[b, ds.io_tok] - end[b, ds.s_tok]


@pytest.mark.parametrize("wrong, message", [
    (logit_diff_last_position, r"position -1.*right-padded"),
    (logit_diff_s_minus_io, r"wrong sign"),
    (logit_diff_before_end, r"one position before END"),
])
def test_logits_to_logit_diff_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        tm.check_logits_to_logit_diff(wrong)


def directions_rows(W_U, ds):
    # Mistake: takes rows of W_U (as if it were [d_vocab, d_model]).
    return W_U[ds.io_tok] - W_U[ds.s_tok]


def directions_reversed(W_U, ds):
    # Mistake: the direction of logit(S) - logit(IO).
    return (W_U[:, ds.s_tok] - W_U[:, ds.io_tok]).T


def test_logit_diff_directions_rejects_rows():
    # The check tries a square W_U first, where rows have the right shape but the wrong values.
    with pytest.raises(CheckFailed, match=r"took rows of W_U.*a \*column\*"):
        tm.check_logit_diff_directions(directions_rows)


def test_logit_diff_directions_rejects_reversed():
    with pytest.raises(CheckFailed, match=r"point the wrong way"):
        tm.check_logit_diff_directions(directions_reversed)


def residual_sum_over_batch(stack, directions):
    # Mistake: sums over prompts instead of averaging.
    return (stack * directions).sum(-1).sum(-1)


def residual_mean_direction(stack, directions):
    # Mistake: averages the pieces and the directions first, losing each prompt's own direction.
    return (stack.mean(1) * directions.mean(0)).sum(-1)


@pytest.mark.parametrize("wrong, message", [
    (residual_sum_over_batch, r"summed over the prompts"),
    (residual_mean_direction, r"averaged the residual pieces and the directions separately"),
])
def test_residual_to_logit_diff_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        tm.check_residual_to_logit_diff(wrong)


def end_attention_transposed(pattern, end, key_pos):
    # Mistake: query and key swapped (attention from key_pos to END).
    b = torch.arange(pattern.shape[0])
    return pattern[b, :, key_pos, end].mean(0)


def end_attention_last_query(pattern, end, key_pos):
    # Mistake: the last position as the query for every prompt.
    b = torch.arange(pattern.shape[0])
    return pattern[b, :, -1, key_pos].mean(0)


@pytest.mark.parametrize("wrong, message", [
    (end_attention_transposed, r"\*from\* key_pos \*to\* END"),
    (end_attention_last_query, r"last position as the query"),
])
def test_end_attention_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        tm.check_end_attention(wrong)


# ============================================================================================
# Section 2: activation patching


@pytest.fixture(scope="module")
def ap_model():
    model = load_model("ioi-toy", device="cpu", shipped=True)
    yield model
    model.reset_hooks()


def test_ap_solutions_pass(ap_model):
    ap.check_normalised_patching_metric(ap_sol.normalised_patching_metric)
    ap.check_patch_residual_hook(ap_sol.patch_residual_hook)
    ap.check_patch_residual_stream(ap_sol.patch_residual_stream, ap_model)
    ap.check_patch_head_outputs(ap_sol.patch_head_outputs, ap_model)
    ap.check_patch_head_patterns(ap_sol.patch_head_patterns, ap_model)


# --- normalised_patching_metric ---


def ap_metric_swapped(logit_diff, clean_ld, corrupted_ld):
    # Mistake: the endpoints are swapped, so the corrupted run scores 1 and the clean run 0.
    return (logit_diff - clean_ld) / (corrupted_ld - clean_ld)


def ap_metric_no_denominator(logit_diff, clean_ld, corrupted_ld):
    # Mistake: subtracts the corrupted baseline but forgets to divide by the clean-corrupted gap.
    return logit_diff - corrupted_ld


def ap_metric_in_place(logit_diff, clean_ld, corrupted_ld):
    # Mistake: edits the caller's tensor in place.
    logit_diff -= corrupted_ld
    logit_diff /= clean_ld - corrupted_ld
    return logit_diff


def test_ap_metric_rejects_swapped_endpoints():
    with pytest.raises(CheckFailed, match="endpoints are swapped"):
        ap.check_normalised_patching_metric(ap_metric_swapped)


def test_ap_metric_rejects_missing_denominator():
    with pytest.raises(CheckFailed, match="denominator is missing"):
        ap.check_normalised_patching_metric(ap_metric_no_denominator)


def test_ap_metric_rejects_in_place_edit():
    with pytest.raises(CheckFailed, match="in place"):
        ap.check_normalised_patching_metric(ap_metric_in_place)


# --- patch_residual_hook ---


def ap_hook_from_pos_on(resid, hook, pos, clean_resid):
    # Mistake: `pos:` patches every position from pos to the end.
    resid[:, pos:] = clean_resid[:, pos:]
    return resid


def ap_hook_batch_axis(resid, hook, pos, clean_resid):
    # Mistake: indexes the first (batch) axis instead of the position axis.
    resid[pos] = clean_resid[pos]
    return resid


def ap_hook_assignment_reversed(resid, hook, pos, clean_resid):
    # Mistake: the assignment goes the wrong way, writing the corrupted value into the clean tensor.
    clean_resid[:, pos] = resid[:, pos]
    return resid


def ap_hook_no_return(resid, hook, pos, clean_resid):
    # Mistake: patches a copy and forgets to return it.
    resid = resid.clone()
    resid[:, pos] = clean_resid[:, pos]


def test_ap_hook_rejects_slice_from_pos():
    with pytest.raises(CheckFailed, match=r"resid\[:, pos:\]"):
        ap.check_patch_residual_hook(ap_hook_from_pos_on)


def test_ap_hook_rejects_batch_axis():
    with pytest.raises(CheckFailed, match="sequence 2 of the batch"):
        ap.check_patch_residual_hook(ap_hook_batch_axis)


def test_ap_hook_rejects_reversed_assignment():
    with pytest.raises(CheckFailed, match="wrong way round"):
        ap.check_patch_residual_hook(ap_hook_assignment_reversed)


def test_ap_hook_rejects_missing_return():
    with pytest.raises(CheckFailed, match="returned None"):
        ap.check_patch_residual_hook(ap_hook_no_return)


# --- patch_residual_stream ---


def _ap_sweep(model, corrupted_tokens, cache, metric, name_of, hook):
    """A residual sweep with a pluggable hook point and hook (the parts the slips below change)."""
    n_layers, n_pos = model.cfg.n_layers, corrupted_tokens.shape[1]
    out = torch.zeros(n_layers, n_pos)
    for layer in range(n_layers):
        name = name_of(layer)
        for pos in range(n_pos):
            fn = functools.partial(hook, pos=pos, clean_resid=cache[name])
            out[layer, pos] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, fn)]))
    return out


def ap_resid_post(model, corrupted_tokens, clean_cache, metric):
    # Mistake: patches each layer's output (hook_resid_post) instead of its input.
    return _ap_sweep(model, corrupted_tokens, clean_cache, metric,
                     lambda layer: f"blocks.{layer}.hook_resid_post", ap_sol.patch_residual_hook)


def ap_resid_from_pos_on(model, corrupted_tokens, clean_cache, metric):
    # Mistake: the hook patches `pos:`, every position from pos on.
    return _ap_sweep(model, corrupted_tokens, clean_cache, metric,
                     lambda layer: f"blocks.{layer}.hook_resid_pre", ap_hook_from_pos_on)


def ap_resid_corrupted_cache(model, corrupted_tokens, clean_cache, metric):
    # Mistake: patches from a cache of the corrupted run itself, so no patch changes anything.
    _, own_cache = model.run_with_cache(corrupted_tokens)
    return _ap_sweep(model, corrupted_tokens, own_cache, metric,
                     lambda layer: f"blocks.{layer}.hook_resid_pre", ap_sol.patch_residual_hook)


def ap_resid_add_hook(model, corrupted_tokens, clean_cache, metric):
    # Mistake: attaches hooks with add_hook and never removes them, so patches pile up.
    n_layers, n_pos = model.cfg.n_layers, corrupted_tokens.shape[1]
    out = torch.zeros(n_layers, n_pos)
    for layer in range(n_layers):
        name = f"blocks.{layer}.hook_resid_pre"
        for pos in range(n_pos):
            model.add_hook(name, functools.partial(ap_sol.patch_residual_hook, pos=pos, clean_resid=clean_cache[name]))
            out[layer, pos] = metric(model(corrupted_tokens))
    return out


def test_ap_resid_rejects_resid_post(ap_model):
    with pytest.raises(CheckFailed, match="hook_resid_post"):
        ap.check_patch_residual_stream(ap_resid_post, ap_model)


def test_ap_resid_rejects_slice_from_pos(ap_model):
    with pytest.raises(CheckFailed, match=r"row 0 .* should be exactly 1 at S2"):
        ap.check_patch_residual_stream(ap_resid_from_pos_on, ap_model)


def test_ap_resid_rejects_corrupted_cache(ap_model):
    with pytest.raises(CheckFailed, match="every entry is 0"):
        ap.check_patch_residual_stream(ap_resid_corrupted_cache, ap_model)


def test_ap_resid_rejects_leftover_hooks(ap_model):
    with pytest.raises(CheckFailed, match="hooks were still attached"):
        ap.check_patch_residual_stream(ap_resid_add_hook, ap_model)
    assert not leftover_hooks(ap_model)


# --- patch_head_outputs ---


def _ap_head_sweep(model, corrupted_tokens, clean_cache, metric, kind, set_head):
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        name = f"blocks.{layer}.attn.{kind}"
        for head in range(n_heads):
            def hook(act, hook, head=head, clean=clean_cache[name]):
                set_head(act, clean, head)
                return act
            out[layer, head] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)]))
    return out


def ap_heads_position_axis(model, corrupted_tokens, clean_cache, metric):
    # Mistake: z[:, head] indexes the position axis of [batch, pos, head, d_head].
    def set_head(z, clean, head):
        z[:, head] = clean[:, head]
    return _ap_head_sweep(model, corrupted_tokens, clean_cache, metric, "hook_z", set_head)


def ap_heads_d_head_axis(model, corrupted_tokens, clean_cache, metric):
    # Mistake: z[..., head] indexes the last (d_head) axis, one component of every head.
    def set_head(z, clean, head):
        z[..., head] = clean[..., head]
    return _ap_head_sweep(model, corrupted_tokens, clean_cache, metric, "hook_z", set_head)


def test_ap_heads_rejects_position_axis(ap_model):
    with pytest.raises(CheckFailed, match=r"every entry is 0.*z\[:, :, head\]"):
        ap.check_patch_head_outputs(ap_heads_position_axis, ap_model)


def test_ap_heads_rejects_d_head_axis(ap_model):
    with pytest.raises(CheckFailed, match=r"head axis is the third"):
        ap.check_patch_head_outputs(ap_heads_d_head_axis, ap_model)


# --- patch_head_patterns ---


def ap_patterns_query_axis(model, corrupted_tokens, clean_cache, metric):
    # Mistake: pattern[:, :, head] indexes the query axis of [batch, head, query, key].
    def set_head(pattern, clean, head):
        pattern[:, :, head] = clean[:, :, head]
    return _ap_head_sweep(model, corrupted_tokens, clean_cache, metric, "hook_pattern", set_head)


def ap_patterns_patched_z(model, corrupted_tokens, clean_cache, metric):
    # Mistake: copied the head-output sweep and kept hook_z, so the whole output is patched.
    return ap_sol.patch_head_outputs(model, corrupted_tokens, clean_cache, metric)


def test_ap_patterns_rejects_query_axis(ap_model):
    with pytest.raises(CheckFailed, match=r"query position.*pattern\[:, head\]"):
        ap.check_patch_head_patterns(ap_patterns_query_axis, ap_model)


def test_ap_patterns_rejects_patching_z(ap_model):
    with pytest.raises(CheckFailed, match="you patched hook_z"):
        ap.check_patch_head_patterns(ap_patterns_patched_z, ap_model)


# ============================================================================================
# Section 3: path patching


@pytest.fixture(scope="module")
def pp_model():
    return load_model("ioi-toy", device="cpu", shipped=True)


def test_path_patching_solutions_pass(pp_model):
    pp.check_direct_path_effect(pp_sol.direct_path_effect, pp_model)
    pp.check_freeze_and_patch_z_hook(pp_sol.freeze_and_patch_z_hook)
    pp.check_patch_receiver_hook(pp_sol.patch_receiver_hook)
    pp.check_path_patch(pp_sol.path_patch, pp_model)
    pp.check_path_patch_sweep(pp_sol.path_patch_sweep, pp_model)


# --- direct_path_effect ---


def _direct(model, ds, clean_cache, corrupted_cache, pos, sign=1.0):
    direction = (model.W_U[:, ds.io_tok] - model.W_U[:, ds.s_tok]).T
    batch = torch.arange(len(ds))
    rows = []
    for layer in range(model.cfg.n_layers):
        dz = sign * (corrupted_cache["z", layer] - clean_cache["z", layer])[batch, pos]
        rows.append(torch.einsum("bhd,hdm,bm->bh", dz, model.W_O[layer], direction).mean(0))
    return torch.stack(rows)


def direct_path_effect_last_position(model, ds, clean_cache, corrupted_cache):
    # Mistake: reads the output at position -1, a pad token for the shorter prompts.
    return _direct(model, ds, clean_cache, corrupted_cache, -1)


def direct_path_effect_sign_flipped(model, ds, clean_cache, corrupted_cache):
    # Mistake: clean - corrupted instead of corrupted - clean (denoising's sign).
    return _direct(model, ds, clean_cache, corrupted_cache, ds.end, sign=-1.0)


def test_direct_path_effect_rejects_position_minus_one(pp_model):
    with pytest.raises(CheckFailed, match=r"position -1.*right-padded"):
        pp.check_direct_path_effect(direct_path_effect_last_position, pp_model)


def test_direct_path_effect_rejects_flipped_sign(pp_model):
    with pytest.raises(CheckFailed, match="opposite sign"):
        pp.check_direct_path_effect(direct_path_effect_sign_flipped, pp_model)


# --- freeze_and_patch_z_hook ---


def freeze_hook_without_freezing(z, hook, sender, clean_cache, corrupted_cache):
    # Mistake: patches the sender but leaves every other head as the current run computed it.
    z = z.clone()
    if hook.layer() == sender[0]:
        z[:, :, sender[1]] = corrupted_cache["z", hook.layer()][:, :, sender[1]]
    return z


def freeze_hook_writes_into_cache(z, hook, sender, clean_cache, corrupted_cache):
    # Mistake: no .clone(), so writing the sender edits the clean cache itself.
    frozen = clean_cache["z", hook.layer()]
    if hook.layer() == sender[0]:
        frozen[:, :, sender[1]] = corrupted_cache["z", hook.layer()][:, :, sender[1]]
    return frozen


def freeze_hook_ignores_layer(z, hook, sender, clean_cache, corrupted_cache):
    # Mistake: corrupts head sender[1] in every layer, not only in the sender's layer.
    frozen = clean_cache["z", hook.layer()].clone()
    frozen[:, :, sender[1]] = corrupted_cache["z", hook.layer()][:, :, sender[1]]
    return frozen


def test_freeze_hook_rejects_missing_freeze():
    with pytest.raises(CheckFailed, match="Freeze"):
        pp.check_freeze_and_patch_z_hook(freeze_hook_without_freezing)


def test_freeze_hook_rejects_writing_into_the_cache():
    with pytest.raises(CheckFailed, match=r"changed the tensors inside the caches.*clone"):
        pp.check_freeze_and_patch_z_hook(freeze_hook_writes_into_cache)


def test_freeze_hook_rejects_sender_in_every_layer():
    with pytest.raises(CheckFailed, match="compare `hook.layer\\(\\)` with the sender's layer"):
        pp.check_freeze_and_patch_z_hook(freeze_hook_ignores_layer)


# --- patch_receiver_hook ---


def receiver_hook_ignores_layer(x, hook, receivers, recorded):
    # Mistake: replaces every receiver's head index, whatever layer the receiver is in.
    x = x.clone()
    if hook.layer() in recorded:
        for _, head in receivers:
            x[:, :, head] = recorded[hook.layer()][:, :, head]
    return x


def receiver_hook_whole_layer(x, hook, receivers, recorded):
    # Mistake: writes the whole recorded activation, so non-receivers change too.
    if hook.layer() in recorded:
        return recorded[hook.layer()].clone()
    return x


def test_receiver_hook_rejects_other_layers_receivers():
    with pytest.raises(CheckFailed, match="receivers in another layer"):
        pp.check_patch_receiver_hook(receiver_hook_ignores_layer)


def test_receiver_hook_rejects_whole_layer():
    with pytest.raises(CheckFailed, match="replaced every head by the recorded values"):
        pp.check_patch_receiver_hook(receiver_hook_whole_layer)


# --- path_patch ---


def _path_patch(model, ds, sender, receivers, component, clean_cache, corrupted_cache, *, freeze=True,
                record_as=None):
    """The recipe with one switch per slip: ``freeze=False`` patches only the sender in step 2;
    ``record_as`` records and patches another hook (e.g. "z") than the component asked for."""
    tokens = ds.tokens
    kind = record_as or component
    layers = sorted({layer for layer, _ in receivers})
    recorded = {}

    def record(x, hook):
        recorded[hook.layer()] = x.clone()

    if freeze:
        step2 = functools.partial(pp_sol.freeze_and_patch_z_hook, sender=sender, clean_cache=clean_cache,
                                  corrupted_cache=corrupted_cache)
        hooks = [(f"blocks.{layer}.attn.hook_z", step2) for layer in range(max(layers))]
    else:
        def step2(z, hook):
            z = z.clone()
            z[:, :, sender[1]] = corrupted_cache["z", sender[0]][:, :, sender[1]]
            return z
        hooks = [(f"blocks.{sender[0]}.attn.hook_z", step2)]
    hooks += [(f"blocks.{layer}.attn.hook_{kind}", record) for layer in layers]
    model.run_with_hooks(tokens, fwd_hooks=hooks, return_type=None)
    patch = functools.partial(pp_sol.patch_receiver_hook, receivers=receivers, recorded=recorded)
    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_{kind}", patch) for layer in layers])
    return logits_to_logit_diff(logits, ds)


def path_patch_no_freeze(model, ds, sender, receivers, component, clean_cache, corrupted_cache):
    # Mistake: step 2 corrupts the sender but does not freeze the other heads.
    return _path_patch(model, ds, sender, receivers, component, clean_cache, corrupted_cache, freeze=False)


def path_patch_receiver_output(model, ds, sender, receivers, component, clean_cache, corrupted_cache):
    # Mistake: records and patches the receivers' output (hook_z) instead of their input.
    return _path_patch(model, ds, sender, receivers, component, clean_cache, corrupted_cache, record_as="z")


def path_patch_always_q(model, ds, sender, receivers, component, clean_cache, corrupted_cache):
    # Mistake: copied the query example and patches hook_q whatever `component` says.
    return _path_patch(model, ds, sender, receivers, component, clean_cache, corrupted_cache, record_as="q")


def test_path_patch_rejects_missing_freeze(pp_model):
    with pytest.raises(CheckFailed, match="Freeze every other head"):
        pp.check_path_patch(path_patch_no_freeze, pp_model)


def test_path_patch_rejects_patching_the_output(pp_model):
    with pytest.raises(CheckFailed, match=r"whole output \(their z"):
        pp.check_path_patch(path_patch_receiver_output, pp_model)


def test_path_patch_rejects_wrong_component(pp_model):
    with pytest.raises(CheckFailed, match=r"patching the receivers' 'q' instead of 'k'"):
        pp.check_path_patch(path_patch_always_q, pp_model)


# --- path_patch_sweep ---


def path_patch_sweep_normalised(model, ds, receivers, component, clean_cache, corrupted_cache, ld_clean,
                                ld_corrupted):
    # Mistake: returns section 2's normalised metric (1 = clean) instead of the fraction lost.
    lost = pp_sol.path_patch_sweep(model, ds, receivers, component, clean_cache, corrupted_cache, ld_clean,
                                   ld_corrupted)
    return 1 - lost


def path_patch_sweep_zeros_for_non_senders(model, ds, receivers, component, clean_cache, corrupted_cache,
                                           ld_clean, ld_corrupted):
    # Mistake: fills the heads that cannot be senders with 0 instead of NaN.
    lost = pp_sol.path_patch_sweep(model, ds, receivers, component, clean_cache, corrupted_cache, ld_clean,
                                   ld_corrupted)
    return lost.nan_to_num(0.0)


def test_path_patch_sweep_rejects_normalised_metric(pp_model):
    with pytest.raises(CheckFailed, match="fraction \\*lost\\*"):
        pp.check_path_patch_sweep(path_patch_sweep_normalised, pp_model)


def test_path_patch_sweep_rejects_missing_nans(pp_model):
    with pytest.raises(CheckFailed, match="expected NaN exactly"):
        pp.check_path_patch_sweep(path_patch_sweep_zeros_for_non_senders, pp_model)


# ============================================================================================
# Section 4: faithfulness and completeness


@pytest.fixture(scope="module")
def fa_model():
    return load_model("ioi-toy", device="cpu", shipped=True)


def test_faithfulness_solutions_pass(fa_model):
    fa.check_mean_by_layout(fa_sol.mean_by_layout)
    fa.check_mean_ablate_heads_hook(fa_sol.mean_ablate_heads_hook)
    fa.check_circuit_logit_diff(fa_sol.circuit_logit_diff, fa_model)
    fa.check_knockout_logit_diffs(fa_sol.knockout_logit_diffs, fa_model)
    fa.check_head_dla_with_hooks(fa_sol.head_dla_with_hooks, fa_model)


# --- mean_by_layout ---


def mean_by_layout_whole_batch(z, layout):
    # Mistake: ignores the layout and averages over the whole batch.
    return z.mean(0, keepdim=True).expand_as(z).clone()


def mean_by_layout_over_positions(z, layout):
    # Mistake: groups by layout but averages over the position axis (dim 1) instead of prompts.
    ids = torch.as_tensor(layout)
    out = torch.empty_like(z)
    for value in ids.unique():
        same = ids == value
        out[same] = z[same].mean(1, keepdim=True)
    return out


def mean_by_layout_first_prompt(z, layout):
    # Mistake: copies the group's first prompt to every member instead of averaging.
    ids = torch.as_tensor(layout)
    out = torch.empty_like(z)
    for value in ids.unique():
        same = (ids == value).nonzero().flatten()
        out[same] = z[same[0]]
    return out


def test_mean_by_layout_rejects_whole_batch_mean():
    with pytest.raises(CheckFailed, match=r"mean over the \*whole batch\*"):
        fa.check_mean_by_layout(mean_by_layout_whole_batch)


def test_mean_by_layout_rejects_mean_over_positions():
    with pytest.raises(CheckFailed, match=r"averaged over axis 1, the position axis"):
        fa.check_mean_by_layout(mean_by_layout_over_positions)


def test_mean_by_layout_rejects_first_prompt_of_group():
    with pytest.raises(CheckFailed, match=r"row 0 by \(z\[0\] \+ z\[2\] \+ z\[3\]\) / 3"):
        fa.check_mean_by_layout(mean_by_layout_first_prompt)


# --- mean_ablate_heads_hook ---


def ablate_all_heads_hook(z, hook, heads, layout):
    # Mistake: mean-ablates every head of the layer, not only the listed ones.
    return fa_sol.mean_by_layout(z, layout)


def ablate_positions_hook(z, hook, heads, layout):
    # Mistake: indexes the position axis (z[:, heads]) instead of the head axis.
    z = z.clone()
    z[:, heads] = fa_sol.mean_by_layout(z[:, heads], layout)
    return z


def zero_heads_hook(z, hook, heads, layout):
    # Mistake: zero-ablation instead of mean-ablation.
    z = z.clone()
    z[:, :, heads] = 0.0
    return z


def batch_mean_heads_hook(z, hook, heads, layout):
    # Mistake: means over the whole batch, ignoring the layout.
    z = z.clone()
    z[:, :, heads] = z[:, :, heads].mean(0, keepdim=True)
    return z


def test_ablate_hook_rejects_all_heads():
    with pytest.raises(CheckFailed, match=r"also changed heads \[0, 2\].*Ablate only z\[:, :, heads\]"):
        fa.check_mean_ablate_heads_hook(ablate_all_heads_hook)


def test_ablate_hook_rejects_position_axis():
    with pytest.raises(CheckFailed, match=r"averaged z\[:, \[1, 3\]\] \(positions \[1, 3\]\).*head axis is the third"):
        fa.check_mean_ablate_heads_hook(ablate_positions_hook)


def test_ablate_hook_rejects_zero_ablation():
    with pytest.raises(CheckFailed, match=r"set to zero\. This is mean-ablation"):
        fa.check_mean_ablate_heads_hook(zero_heads_hook)


def test_ablate_hook_rejects_batch_mean():
    with pytest.raises(CheckFailed, match=r"mean over the whole batch\. Average only over prompts with the same layout"):
        fa.check_mean_ablate_heads_hook(batch_mean_heads_hook)


# --- circuit_logit_diff ---


def _circuit_run(model, ds, heads_to_change, hook_fn):
    hooks = []
    for layer in range(model.cfg.n_layers):
        hs = [h for h in range(model.cfg.n_heads) if (layer, h) in heads_to_change]
        if hs:
            hooks.append((f"blocks.{layer}.attn.hook_z", functools.partial(hook_fn, heads=hs, layout=ds.layout)))
    return model.run_with_hooks(ds.tokens, fwd_hooks=hooks)


def _all(model):
    return [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


def circuit_ld_ablates_circuit(model, ds, circuit):
    # Mistake: mean-ablates the circuit's heads instead of the heads outside it.
    return logits_to_logit_diff(_circuit_run(model, ds, circuit, fa_sol.mean_ablate_heads_hook), ds)


def circuit_ld_zero_ablation(model, ds, circuit):
    # Mistake: zero-ablates the heads outside the circuit.
    outside = [x for x in _all(model) if x not in circuit]
    return logits_to_logit_diff(_circuit_run(model, ds, outside, zero_heads_hook), ds)


def circuit_ld_batch_mean(model, ds, circuit):
    # Mistake: mean over the whole batch, although the prompts have two layouts.
    outside = [x for x in _all(model) if x not in circuit]
    return logits_to_logit_diff(_circuit_run(model, ds, outside, batch_mean_heads_hook), ds)


def circuit_ld_last_position(model, ds, circuit):
    # Mistake: reads the logits at position -1, which is padding for the shorter prompts.
    outside = [x for x in _all(model) if x not in circuit]
    logits = _circuit_run(model, ds, outside, fa_sol.mean_ablate_heads_hook)
    b = torch.arange(len(ds))
    return logits[b, -1, ds.io_tok] - logits[b, -1, ds.s_tok]


def test_circuit_ld_rejects_ablating_the_circuit(fa_model):
    with pytest.raises(CheckFailed, match=r"ablated the circuit instead of its complement"):
        fa.check_circuit_logit_diff(circuit_ld_ablates_circuit, fa_model)


def test_circuit_ld_rejects_zero_ablation(fa_model):
    with pytest.raises(CheckFailed, match=r"match zero-ablation"):
        fa.check_circuit_logit_diff(circuit_ld_zero_ablation, fa_model)


def test_circuit_ld_rejects_whole_batch_mean(fa_model):
    with pytest.raises(CheckFailed, match=r"mean over the whole batch.*same `ds.layout`"):
        fa.check_circuit_logit_diff(circuit_ld_batch_mean, fa_model)


def test_circuit_ld_rejects_last_position(fa_model):
    with pytest.raises(CheckFailed, match=r"every head in the circuit.*ds\.end, not at position -1"):
        fa.check_circuit_logit_diff(circuit_ld_last_position, fa_model)


# --- knockout_logit_diffs ---


def knockout_keeps_k_in_circuit(model, ds, circuit, knocked):
    # Mistake: removes K from the model but forgets to remove it from the circuit.
    model_without = fa_sol.circuit_logit_diff(model, ds, [x for x in _all(model) if x not in knocked])
    return model_without, fa_sol.circuit_logit_diff(model, ds, circuit)


def knockout_swapped(model, ds, circuit, knocked):
    # Mistake: returns the two results in the wrong order.
    model_without, circuit_without = fa_sol.knockout_logit_diffs(model, ds, circuit, knocked)
    return circuit_without, model_without


def test_knockout_rejects_k_left_in_circuit(fa_model):
    with pytest.raises(CheckFailed, match=r"heads of K were not removed from the circuit"):
        fa.check_knockout_logit_diffs(knockout_keeps_k_in_circuit, fa_model)


def test_knockout_rejects_swapped_results(fa_model):
    with pytest.raises(CheckFailed, match=r"the two results are swapped"):
        fa.check_knockout_logit_diffs(knockout_swapped, fa_model)


# --- head_dla_with_hooks ---


def _dla_from_cache(model, ds, cache, end):
    b = torch.arange(len(ds))
    directions = (model.W_U[:, ds.io_tok] - model.W_U[:, ds.s_tok]).T
    rows = []
    for layer in range(model.cfg.n_layers):
        out = torch.einsum("bhd,hdm->bhm", cache[f"blocks.{layer}.attn.hook_z"][b, end], model.W_O[layer])
        rows.append(torch.einsum("bhm,bm->bh", out, directions).mean(0))
    return torch.stack(rows)


def dla_ignores_hooks(model, ds, fwd_hooks):
    # Mistake: caches a plain run, so the hooks never act on the activations it reads.
    model.run_with_hooks(ds.tokens, fwd_hooks=list(fwd_hooks))
    _, cache = model.run_with_cache(ds.tokens)
    return _dla_from_cache(model, ds, cache, ds.end)


def dla_last_position(model, ds, fwd_hooks):
    # Mistake: reads each head's output at position -1 instead of at each prompt's END.
    with model.hooks(fwd_hooks=list(fwd_hooks)):
        _, cache = model.run_with_cache(ds.tokens)
    return _dla_from_cache(model, ds, cache, torch.full_like(ds.end, -1))


def dla_one_direction(model, ds, fwd_hooks):
    # Mistake: projects every prompt on the first prompt's logit-difference direction.
    with model.hooks(fwd_hooks=list(fwd_hooks)):
        _, cache = model.run_with_cache(ds.tokens)
    b = torch.arange(len(ds))
    direction = model.W_U[:, ds.io_tok[0]] - model.W_U[:, ds.s_tok[0]]
    rows = []
    for layer in range(model.cfg.n_layers):
        out = torch.einsum("bhd,hdm->bhm", cache[f"blocks.{layer}.attn.hook_z"][b, ds.end], model.W_O[layer])
        rows.append((out @ direction).mean(0))
    return torch.stack(rows)


def test_dla_rejects_ignored_hooks(fa_model):
    with pytest.raises(CheckFailed, match=r"same attributions as with no hooks.*with model\.hooks"):
        fa.check_head_dla_with_hooks(dla_ignores_hooks, fa_model)


def test_dla_rejects_last_position(fa_model):
    with pytest.raises(CheckFailed, match=r"with no hooks differs.*ds\.end.*not\s+position -1"):
        fa.check_head_dla_with_hooks(dla_last_position, fa_model)


def test_dla_rejects_one_direction_for_all_prompts(fa_model):
    with pytest.raises(CheckFailed, match=r"that prompt's own W_U\[:, IO\] - W_U\[:, S\]"):
        fa.check_head_dla_with_hooks(dla_one_direction, fa_model)


# ============================================================================================
# Section 5: attribution patching


@pytest.fixture(scope="module")
def atp_model():
    return load_model("ioi-toy", device="cpu", shipped=True)


def test_attribution_patching_solutions_pass(atp_model):
    atp.check_cache_with_grads(atp_sol.cache_with_grads, atp_model)
    atp.check_attribution_scores(atp_sol.attribution_scores)
    atp.check_attribution_patch(atp_sol.attribution_patch, atp_model)
    atp.check_metric_along_path(atp_sol.metric_along_path, atp_model)


# --- cache_with_grads ---


def cache_with_grads_grad_off(model, tokens, metric_fn, hook_names):
    # Mistake: forgets that the page switched gradients off, so there is no graph to backpropagate.
    acts, grads = {}, {}
    fwd = [(n, functools.partial(lambda a, hook, name: acts.__setitem__(name, a.detach()), name=n)) for n in hook_names]
    bwd = [(n, functools.partial(lambda g, hook, name: grads.__setitem__(name, g.detach()), name=n)) for n in hook_names]
    with model.hooks(fwd_hooks=fwd, bwd_hooks=bwd):
        metric_fn(model(tokens)).backward()
    return acts, grads


def cache_with_grads_detached(model, tokens, metric_fn, hook_names):
    # Mistake: swaps each activation for a detached leaf that requires grad, cutting the graph there.
    acts = {}

    def make_leaf(act, hook, name):
        acts[name] = act.detach().requires_grad_(True)
        return acts[name]

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(n, functools.partial(make_leaf, name=n)) for n in hook_names])
        metric_fn(logits).backward()
    return {n: a.detach() for n, a in acts.items()}, {n: a.grad for n, a in acts.items()}


def cache_with_grads_retain_grad(model, tokens, metric_fn, hook_names):
    # Mistake: calls retain_grad() on what a hook_z forward hook receives, a reshaped copy in TL 4.x.
    kept = {}

    def keep(act, hook, name):
        act.retain_grad()
        kept[name] = act

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(n, functools.partial(keep, name=n)) for n in hook_names])
        metric_fn(logits).backward()
    return {n: a.detach() for n, a in kept.items()}, {n: a.grad for n, a in kept.items()}


def cache_with_grads_keyed_by_hook_name(model, tokens, metric_fn, hook_names):
    # Mistake: keys the dicts by hook.name, which is an alias (…attn.o.hook_in) for hook_z.
    acts, grads = {}, {}
    fwd = [(n, lambda a, hook: acts.__setitem__(hook.name, a.detach())) for n in hook_names]
    bwd = [(n, lambda g, hook: grads.__setitem__(hook.name, g.detach())) for n in hook_names]
    with torch.enable_grad(), model.hooks(fwd_hooks=fwd, bwd_hooks=bwd):
        metric_fn(model(tokens)).backward()
    return acts, grads


def cache_with_grads_leaves_hooks(model, tokens, metric_fn, hook_names):
    # Mistake: attaches the hooks with add_hook and never removes them.
    acts, grads = {}, {}
    for n in hook_names:
        model.add_hook(n, functools.partial(lambda a, hook, name: acts.__setitem__(name, a.detach()), name=n))
        model.add_hook(n, functools.partial(lambda g, hook, name: grads.__setitem__(name, g.detach()), name=n),
                       dir="bwd")
    with torch.enable_grad():
        metric_fn(model(tokens)).backward()
    return acts, grads


def test_cache_with_grads_rejects_gradients_off(atp_model):
    with pytest.raises(CheckFailed, match=r"gradients are switched off.*torch\.enable_grad\(\)"):
        atp.check_cache_with_grads(cache_with_grads_grad_off, atp_model)


def test_cache_with_grads_rejects_detached_activations(atp_model):
    with pytest.raises(CheckFailed, match=r"is None: no gradient reached this activation.*detached copy"):
        atp.check_cache_with_grads(cache_with_grads_detached, atp_model)


def test_cache_with_grads_rejects_retain_grad_on_a_copy(atp_model):
    with pytest.raises(CheckFailed, match=r"hook_z'\] is None.*retain_grad"):
        atp.check_cache_with_grads(cache_with_grads_retain_grad, atp_model)


def test_cache_with_grads_rejects_alias_keys(atp_model):
    with pytest.raises(CheckFailed, match=r"has no entry for.*`hook\.name` can be an alias"):
        atp.check_cache_with_grads(cache_with_grads_keyed_by_hook_name, atp_model)


def test_cache_with_grads_rejects_leftover_hooks(atp_model):
    with pytest.raises(CheckFailed, match=r"hooks were still attached"):
        atp.check_cache_with_grads(cache_with_grads_leaves_hooks, atp_model)
    assert not leftover_hooks(atp_model)  # the check cleaned up


# --- attribution_scores ---


def attribution_scores_reversed(act_clean, act_corrupted, grad, ld_clean, ld_corrupted):
    # Mistake: corrupted - clean, the direction of the patch reversed.
    return ((act_corrupted - act_clean) * grad).sum(dim=(0, -1)) / (ld_clean - ld_corrupted)


def attribution_scores_over_heads(act_clean, act_corrupted, grad, ld_clean, ld_corrupted):
    # Mistake: sums over the head axis (dim 2) instead of d_head.
    return ((act_clean - act_corrupted) * grad).sum(dim=(0, 2)) / (ld_clean - ld_corrupted)


def attribution_scores_unnormalised(act_clean, act_corrupted, grad, ld_clean, ld_corrupted):
    # Mistake: forgets to divide by ld_clean - ld_corrupted.
    return ((act_clean - act_corrupted) * grad).sum(dim=(0, -1))


def attribution_scores_batch_mean(act_clean, act_corrupted, grad, ld_clean, ld_corrupted):
    # Mistake: averages over the batch, although grad is already that of the batch's metric.
    return ((act_clean - act_corrupted) * grad).sum(-1).mean(0) / (ld_clean - ld_corrupted)


def attribution_scores_keeps_batch(act_clean, act_corrupted, grad, ld_clean, ld_corrupted):
    # Mistake: sums only the last axis, leaving the batch axis in.
    return ((act_clean - act_corrupted) * grad).sum(-1) / (ld_clean - ld_corrupted)


def test_attribution_scores_rejects_reversed_sign():
    with pytest.raises(CheckFailed, match=r"opposite sign.*act_clean - act_corrupted"):
        atp.check_attribution_scores(attribution_scores_reversed)


def test_attribution_scores_rejects_summing_over_heads():
    with pytest.raises(CheckFailed, match=r"summed over the head axis"):
        atp.check_attribution_scores(attribution_scores_over_heads)


def test_attribution_scores_rejects_missing_normalisation():
    with pytest.raises(CheckFailed, match=r"not normalised: divide by \(ld_clean - ld_corrupted\)"):
        atp.check_attribution_scores(attribution_scores_unnormalised)


def test_attribution_scores_rejects_batch_mean():
    with pytest.raises(CheckFailed, match=r"3 \(the batch size\) times too small: you averaged over the batch"):
        atp.check_attribution_scores(attribution_scores_batch_mean)


def test_attribution_scores_rejects_kept_batch_axis():
    with pytest.raises(CheckFailed, match=r"the batch axis is still there"):
        atp.check_attribution_scores(attribution_scores_keeps_batch)


# --- attribution_patch ---


def _attribution_patch(model, ds, hook_names, grad_tokens="corrupted", metric_reduce="mean", scores=None):
    """The solution with one thing changed, for the wrong answers below."""
    clean = ds.tokens.to(model.cfg.device)
    corrupted = ds.corrupted_tokens.to(model.cfg.device)

    def metric(logits):
        ld = logits_to_logit_diff(logits, ds)
        return ld.mean() if metric_reduce == "mean" else ld.sum()

    clean_logits, clean_cache = model.run_with_cache(clean, names_filter=lambda name: name in hook_names)
    tokens = corrupted if grad_tokens == "corrupted" else clean
    acts, grads = atp_sol.cache_with_grads(model, tokens, metric, hook_names)
    if grad_tokens != "corrupted":
        _, corr_cache = model.run_with_cache(corrupted, names_filter=lambda name: name in hook_names)
        acts = {n: corr_cache[n] for n in hook_names}
    mean = lambda lg: logits_to_logit_diff(lg, ds).mean().item()
    ld_clean, ld_corrupted = mean(clean_logits), mean(model(corrupted))
    scores = scores or atp_sol.attribution_scores
    return {n: scores(clean_cache[n], acts[n], grads[n], ld_clean, ld_corrupted) for n in hook_names}


def attribution_patch_clean_gradient(model, ds, hook_names):
    # Mistake: backpropagates from the clean run, so the slope is taken at the wrong end of the step.
    return _attribution_patch(model, ds, hook_names, grad_tokens="clean")


def attribution_patch_summed_metric(model, ds, hook_names):
    # Mistake: backpropagates the sum of the logit differences instead of their mean.
    return _attribution_patch(model, ds, hook_names, metric_reduce="sum")


def attribution_patch_reversed(model, ds, hook_names):
    # Mistake: corrupted - clean in the scores.
    return _attribution_patch(model, ds, hook_names, scores=attribution_scores_reversed)


def attribution_patch_unnormalised(model, ds, hook_names):
    # Mistake: raw changes of the logit difference, not divided by clean - corrupted.
    return _attribution_patch(model, ds, hook_names, scores=attribution_scores_unnormalised)


def test_attribution_patch_rejects_clean_run_gradient(atp_model):
    with pytest.raises(CheckFailed, match=r"slope of the metric at the \*clean\* run.*corrupted prompts' logits"):
        atp.check_attribution_patch(attribution_patch_clean_gradient, atp_model)


def test_attribution_patch_rejects_summed_metric(atp_model):
    with pytest.raises(CheckFailed, match=r"12 \(the number of prompts\) times too large.*\*mean\*"):
        atp.check_attribution_patch(attribution_patch_summed_metric, atp_model)


def test_attribution_patch_rejects_reversed_sign(atp_model):
    with pytest.raises(CheckFailed, match=r"opposite sign"):
        atp.check_attribution_patch(attribution_patch_reversed, atp_model)


def test_attribution_patch_rejects_missing_normalisation(atp_model):
    with pytest.raises(CheckFailed, match=r"not normalised: divide by ld_clean - ld_corrupted"):
        atp.check_attribution_patch(attribution_patch_unnormalised, atp_model)


# --- metric_along_path ---


def _metric_along_path(model, ds, hook_name, pos, alphas, head=None, reverse=False, all_heads=False,
                       all_positions=False, normalise=True):
    """The solution with one thing changed, for the wrong answers below."""
    clean = ds.tokens.to(model.cfg.device)
    corrupted = ds.corrupted_tokens.to(model.cfg.device)
    clean_logits, cache = model.run_with_cache(clean, names_filter=lambda name: name == hook_name)
    ld_clean = logits_to_logit_diff(clean_logits, ds).mean()
    ld_corrupted = logits_to_logit_diff(model(corrupted), ds).mean()
    if all_positions:
        where = (slice(None),)
    elif head is None or all_heads:
        where = (slice(None), pos)
    else:
        where = (slice(None), pos, head)
    target = cache[hook_name][where]

    def move(act, hook, alpha):
        act = act.clone()
        if reverse:
            act[where] = target + alpha * (act[where] - target)
        else:
            act[where] = act[where] + alpha * (target - act[where])
        return act

    values = []
    for alpha in alphas.tolist():
        logits = model.run_with_hooks(corrupted, fwd_hooks=[(hook_name, functools.partial(move, alpha=alpha))])
        ld = logits_to_logit_diff(logits, ds).mean()
        values.append((ld - ld_corrupted) / (ld_clean - ld_corrupted) if normalise else ld)
    return torch.stack(values)


def metric_along_path_reversed(model, ds, hook_name, pos, alphas, head=None):
    # Mistake: starts from the clean value and walks towards the corrupted one.
    return _metric_along_path(model, ds, hook_name, pos, alphas, head, reverse=True)


def metric_along_path_every_head(model, ds, hook_name, pos, alphas, head=None):
    # Mistake: ignores `head`, moving every head's z at that position.
    return _metric_along_path(model, ds, hook_name, pos, alphas, head, all_heads=True)


def metric_along_path_every_position(model, ds, hook_name, pos, alphas, head=None):
    # Mistake: moves the activation at every position, not only `pos`.
    return _metric_along_path(model, ds, hook_name, pos, alphas, head, all_positions=True)


def metric_along_path_raw(model, ds, hook_name, pos, alphas, head=None):
    # Mistake: returns the raw logit difference, not the normalised metric.
    return _metric_along_path(model, ds, hook_name, pos, alphas, head, normalise=False)


def test_metric_along_path_rejects_reversed_path(atp_model):
    with pytest.raises(CheckFailed, match=r"your path runs backwards"):
        atp.check_metric_along_path(metric_along_path_reversed, atp_model)


def test_metric_along_path_rejects_every_head(atp_model):
    with pytest.raises(CheckFailed, match=r"you moved every head's z at position"):
        atp.check_metric_along_path(metric_along_path_every_head, atp_model)


def test_metric_along_path_rejects_every_position(atp_model):
    with pytest.raises(CheckFailed, match=r"you moved every position"):
        atp.check_metric_along_path(metric_along_path_every_position, atp_model)


def test_metric_along_path_rejects_raw_logit_diff(atp_model):
    with pytest.raises(CheckFailed, match=r"should be 0.*raw logit difference: normalise"):
        atp.check_metric_along_path(metric_along_path_raw, atp_model)
