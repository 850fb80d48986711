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
