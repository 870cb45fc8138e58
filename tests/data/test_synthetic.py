from __future__ import annotations

import pytest
import torch

from leandl.data import load_data
from leandl.data.synthetic import teacher_labels
from leandl.errors import ConfigError


def test_synthetic_shapes_seed_and_learnable_teacher() -> None:
    a = load_data("synthetic", seed=5, shape=[3, 8, 8], num_classes=4, num_samples=200, num_val=20, num_test=50)
    b = load_data("synthetic", seed=5, shape=[3, 8, 8], num_classes=4, num_samples=200, num_val=20, num_test=50)
    assert a.input_shape == (3, 8, 8) and a.num_classes == 4 and len(a.test) == 50
    x, y, i = a.train[0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64 and int(i) == 0
    torch.testing.assert_close(a.test.inputs, b.test.inputs, rtol=0, atol=0)
    # the teacher drawn first from the same generator reproduces every label exactly
    g = torch.Generator().manual_seed(5)
    w = torch.randn(4, 192, generator=g) / 192**0.5
    bias = 0.1 * torch.randn(4, generator=g)
    torch.testing.assert_close(teacher_labels(a.train.inputs, w, bias), a.targets("train"), rtol=0, atol=0)
    assert torch.bincount(a.targets("train"), minlength=4).min() > 0


def test_synthetic_rejects_bad_shape() -> None:
    with pytest.raises(ConfigError, match="data.shape"):
        load_data("synthetic", shape=[3, 0])
