import os

import pytest

from interpbook.profiles import PROFILE_ENV, UnknownProfileError, current_profile
from interpbook.zoo import UnknownModelError, load_model, model_names


def test_default_profile_sets_hub_offline(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert current_profile() == "default"
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_unknown_profile_lists_valid_ones(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "fast")
    with pytest.raises(UnknownProfileError, match=r"Unknown profile 'fast'.*default, full"):
        current_profile()


def test_unknown_model_lists_the_zoo():
    with pytest.raises(UnknownModelError) as e:
        load_model("gpt-5")
    msg = str(e.value)
    assert "Unknown model 'gpt-5'" in msg
    for name in model_names():
        assert name in msg


def test_explicit_unknown_profile_is_rejected():
    name = model_names()[0]
    with pytest.raises(UnknownProfileError):
        load_model(name, profile="turbo")


@pytest.mark.parametrize(("name", "hub"), [("attn-only-2l", "attn-only-2l"), ("gpt-mini", "gpt2")])
def test_full_profile_uses_the_real_hub_loader_and_fails_clearly_offline(monkeypatch, name, hub):
    # The hub path is real code: offline (HF_HUB_OFFLINE=1, set by the package in the default
    # profile before transformers is imported) it must fail fast with an actionable message.
    import time

    from interpbook.zoo.registry import HubLoadError, model_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubLoadError, match=rf"hub model '{hub}' that stands in for '{name}'.*full.*network") as err:
        load_model(name, device="cpu", profile="full")
    assert time.perf_counter() - start < 20
    assert err.value.__cause__ is not None  # raised by the hub loader, not by a stub
    assert hub in model_source(name, "full")


def test_shipped_loads_the_book_checkpoint_under_full(monkeypatch):
    # Model cards and pages with book-specific data run on the shipped model under `full` too.
    from interpbook.zoo.registry import model_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_model("ioi-toy", device="cpu", profile="full", shipped=True)
    assert model.cfg.d_vocab < 1000  # the word-level toy vocabulary, not GPT-2's
    assert model_source("ioi-toy", "default") == "book-trained checkpoint `ioi-toy`"
