import pytest
import torch

from interpbook import checks


def test_wrong_shape_names_the_axes():
    with pytest.raises(checks.CheckFailed, match=r"shape \[4, 2\]; expected \[2, 4\] = \[layer, head\]"):
        checks.expect_tensor(torch.zeros(4, 2), "scores", shape=(2, 4), dims="layer, head")


def test_wrong_dtype_and_type():
    with pytest.raises(checks.CheckFailed, match="dtype torch.int64; expected torch.float32"):
        checks.expect_tensor(torch.zeros(2, dtype=torch.long), "x", dtype=torch.float32)
    with pytest.raises(checks.CheckFailed, match="should be a torch.Tensor, got list"):
        checks.expect_tensor([1, 2], "x")


def test_stub_becomes_readable_failure():
    def f():
        raise NotImplementedError("your code here")

    with pytest.raises(checks.CheckFailed, match="`f` still raises NotImplementedError"):
        checks.call(f)


def test_expect_close_reports_where():
    with pytest.raises(checks.CheckFailed, match=r"at index \[1\]"):
        checks.expect_close(torch.tensor([1.0, 5.0]), torch.tensor([1.0, 2.0]), "v")


def test_learner_error_becomes_a_failure_that_shows_the_inputs():
    def f(x, n, *, axis):
        raise IndexError("index 5 is out of bounds")

    with pytest.raises(checks.CheckFailed, match=r"`f` raised IndexError: index 5 is out of bounds when called "
                       r"with \(a tensor of shape \[2, 3\], 4, axis=-1\) \(layer 1\)"):
        checks.call(f, torch.zeros(2, 3), 4, axis=-1, what="(layer 1)")


def test_one_wrapper_for_every_checks_module():
    # Every section's checks go through checks.call, so failures read the same everywhere.
    import importlib
    import pkgutil

    import interpbook.checks as root

    for info in pkgutil.walk_packages(root.__path__, "interpbook.checks."):
        module = importlib.import_module(info.name)
        own = [n for n, v in vars(module).items() if n == "call" and v is not checks.call]
        assert not own, f"{info.name} defines its own `call`; use interpbook.checks.call"


def test_expect_float_takes_numbers_and_one_element_tensors_only():
    assert checks.expect_float(0.25, "x") == 0.25
    assert checks.expect_float(torch.tensor([3]), "x") == 3.0
    with pytest.raises(checks.CheckFailed, match="the accuracy should be one number; got a tensor of shape \\[2\\]"):
        checks.expect_float(torch.zeros(2), "the accuracy")
    for bad in (True, "0.5", None):
        with pytest.raises(checks.CheckFailed, match="should be one number"):
            checks.expect_float(bad, "the accuracy")
