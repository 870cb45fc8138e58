from __future__ import annotations

import pytest
import torch

from leandl.errors import ConfigError
from leandl.nas.space import PRIMITIVES, build_op, check_ops


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("shape", [(2, 6, 11), (2, 6, 7, 5)])
def test_ops_keep_or_halve_the_shape(name, shape):
    x = torch.randn(*shape)
    for stride in (1, 2):
        y = build_op(name, 6, stride, len(shape) - 2).eval()(x)
        assert y.shape[:2] == x.shape[:2]
        assert list(y.shape[2:]) == [(s + stride - 1) // stride for s in x.shape[2:]]


def test_none_is_zero_and_skip_is_identity():
    x = torch.randn(3, 4, 8)
    assert torch.count_nonzero(build_op("none", 4, 1, 1)(x)) == 0
    torch.testing.assert_close(build_op("skip", 4, 1, 1)(x), x)


def test_avg_pool_op_by_hand():
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    op = build_op("avg_pool_3", 1, 1, 1, affine=False).eval()  # fresh BN: (y - 0) / sqrt(1 + eps)
    want = torch.tensor([[[1.5, 2.0, 3.0, 3.5]]]) / (1 + 1e-5) ** 0.5  # padding not counted
    torch.testing.assert_close(op(x), want)


def test_bad_op_lists_are_refused_with_the_field():
    with pytest.raises(ConfigError, match="unknown operation 'conv_9'"):
        check_ops(["skip", "conv_9"], where="stages[1].ops")
    with pytest.raises(ConfigError, match="repeat"):
        check_ops(["skip", "skip"])
    with pytest.raises(ConfigError, match="other than 'none'"):
        check_ops(["none"])
