"""The shipped ``ioi-toy`` checkpoint: accuracy, tokenizer, corruption, and its circuit."""

from __future__ import annotations

import pytest

from interpbook.datasets import ioi as ioi_data
from interpbook.zoo import ioi, ioi_analysis
from interpbook.zoo.checkpoints import load_metrics
from interpbook.zoo.registry import load_model, spec


@pytest.fixture(scope="module")
def model():
    return load_model("ioi-toy", device="cpu", profile="default")


@pytest.fixture(scope="module")
def heldout():
    return ioi_data.make_ioi_dataset(600, split="heldout", seed=11)


def test_registered_with_hub_counterpart():
    s = spec("ioi-toy")
    assert s.hub_name == "gpt2"
    assert s.load_full is not None
    assert s.trainer == "interpbook.zoo.ioi:train"


def test_heldout_pairs_never_in_training():
    train_pairs, held = ioi_data.name_pairs()
    assert not {frozenset(p) for p in train_pairs} & {frozenset(p) for p in held}
    toks, ends, answers = ioi_data.training_examples(2000, ioi.VARIANTS[ioi.SHIPPED_VARIANT].mix, seed=5)
    held_sets = {frozenset(p) for p in held}
    name_ids = set(ioi_data.NAME_IDS)
    for row, end in zip(toks.tolist(), ends.tolist()):
        names = {ioi_data.VOCAB[t] for t in row[: end + 1] if t in name_ids}
        assert not any(frozenset((a, b)) in held_sets for a in names for b in names if a != b)


@pytest.mark.parametrize("order", ["ABBA", "BABA"])
def test_heldout_accuracy_per_order(model, heldout, order):
    sub = heldout.by_order(order)
    assert len(sub) == 300
    assert ioi_analysis.accuracy(model, sub) >= 0.99


def test_mean_logit_diff(model, heldout):
    assert ioi_analysis.logit_diff(model, heldout).mean() >= 4.0


def test_tokenizer_round_trip(model):
    text = "When Mary and John went to the store, John gave a drink to"
    toks = model.to_tokens(text)
    assert toks[0, 0].item() == ioi_data.BOS_ID
    assert toks[0].tolist() == ioi_data.encode(text)
    assert model.to_string(toks[0, 1:]) == text
    assert model.to_str_tokens(text)[1:4] == ["When", "Mary", "and"]
    ds = ioi_data.make_ioi_dataset(8, seed=3)
    for p, row, end in zip(ds.prompts, ds.tokens, ds.end):
        assert model.to_tokens(p)[0].tolist() == row[: end + 1].tolist()


def test_abc_corruption_removes_preference(model, heldout):
    clean = ioi_analysis.logit_diff(model, heldout).mean()
    corrupt = ioi_analysis.logit_diff(model, heldout, corrupted=True).mean()
    assert corrupt.abs() < 0.25 * clean


def test_metrics_file_matches_spec():
    m = load_metrics("ioi-toy")
    assert m["heldout_accuracy_ABBA"] >= 0.99 and m["heldout_accuracy_BABA"] >= 0.99
    assert m["heldout_logit_diff"] >= 4.0
    assert m["variant"] == ioi.SHIPPED_VARIANT
    assert len(m["variants"]) >= 3


@pytest.fixture(scope="module")
def heads(model):
    ds = ioi_data.make_ioi_dataset(300, split="heldout", seed=12, varied_actions=True)
    return ds, ioi_analysis.head_summary(model, ds, ablation=False)


def test_s_inhibition_head_reads_s2_and_acts_through_later_heads(model, heads):
    """Head 0.6 attends from END to S2; it matters through later heads, not directly."""
    ds, hs = heads
    (layer, head), = ioi.SHIPPED_CIRCUIT["s_inhibition"]
    assert hs["end_to_s2"][layer, head] > 0.8
    # Little direct effect on the logits, but ablating it removes most of the logit difference.
    assert hs["dla"][layer, head] < 0.1 * ioi_analysis.logit_diff(model, ds).mean()
    clean = ioi_analysis.logit_diff(model, ds).mean()
    ablated = ioi_analysis.ablated_logit_diff(model, ds, [(layer, head)]).mean()
    assert ablated < 0.5 * clean


def test_name_mover_prefers_io_because_of_s_inhibition(model, heads):
    ds, hs = heads
    nm = ioi.SHIPPED_CIRCUIT["name_mover"]
    clean = ioi_analysis.attention_under_ablation(model, ds, [], nm)
    ablated = ioi_analysis.attention_under_ablation(model, ds, ioi.SHIPPED_CIRCUIT["s_inhibition"], nm)
    assert clean["io"] - clean["s1"] > 0.15
    assert abs(ablated["io"] - ablated["s1"]) < 0.05


def test_late_head_reads_s2_and_raises_the_io(model, heads):
    # It attends from END to S2, yet its direct effect on logit(IO) - logit(S) comes mostly from
    # raising the IO, not from lowering S (both measured against the average name's logit): the
    # IOI chapter's section 1 shows this split.
    ds, hs = heads
    layer, head = ioi.SHIPPED_CIRCUIT["s_mover"]
    assert hs["end_to_s2"][layer, head] > 0.35
    assert hs["dla"][layer, head] > 2.0
    io_up, s_down = ioi_analysis.direct_effect_split(model, ds, layer, head)
    assert io_up > 2 * s_down > 0, (io_up, s_down)


def test_position_labels_name_roles_and_refuse_mixed_layouts():
    ds = ioi_data.make_ioi_dataset(12, templates=[0])
    labels = ds.position_labels()
    assert len(labels) == ds.tokens.shape[1] and len(set(labels)) == len(labels)
    assert [labels[int(p)] for p in (ds.s2_pos[0], ds.end[0])] == ["S2", "END"]
    assert {labels[int(ds.io_pos[i])] for i in range(len(ds))} == {"A", "B"}  # both orders mixed
    with pytest.raises(ValueError, match="one layout, got"):
        ioi_data.make_ioi_dataset(12, varied_actions=True).position_labels()
