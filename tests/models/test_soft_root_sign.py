from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from leandl.models.blocks import SoftRootSign, soft_root_sign
from leandl.train import TrainConfig, Trainer


def _naive(x, a, b):
    return x / (x / a + torch.exp(-x / b))


def test_hand_values_and_naive_formula():
    torch.testing.assert_close(soft_root_sign(torch.tensor([0.0, 1.0]), 1.0, 1.0),
                               torch.tensor([0.0, 1.0 / (1.0 + math.exp(-1.0))]))
    x = torch.linspace(-8, 8, 161, dtype=torch.float64)
    torch.testing.assert_close(soft_root_sign(x, 2.0, 3.0), _naive(x, 2.0, 3.0), rtol=1e-12, atol=1e-12)


def test_minimum_and_asymptotes():
    x = torch.tensor([-3.0, 1e4, -1e4], dtype=torch.float64)
    y = soft_root_sign(x, 2.0, 3.0)
    torch.testing.assert_close(y[0], torch.tensor(-6.0 / (2 * math.e - 3), dtype=torch.float64))
    assert abs(float(y[1]) - 2.0) < 1e-3 and -1e-3 < float(y[2]) <= 0.0


def test_gradient_matches_analytic_and_is_finite():
    x = torch.tensor([-2000.0, -3.0, -0.5, 0.0, 0.7, 4.0, 50.0], dtype=torch.float64, requires_grad=True)
    soft_root_sign(x, 2.0, 3.0).sum().backward()
    xd = x.detach()
    e = torch.exp(-xd / 3.0)
    want = e * (1 + xd / 3.0) / (xd / 2.0 + e) ** 2
    want[0] = 0.0  # the limit; the naive formula gives NaN here
    torch.testing.assert_close(x.grad, want, rtol=1e-9, atol=1e-12)


def test_module_trains_alpha_beta_and_validates():
    m = SoftRootSign(num_parameters=3)
    y = m(torch.randn(2, 3, 4))
    y.sum().backward()
    assert m.alpha.grad is not None and m.beta.grad is not None and m.alpha.grad.shape == (3,)
    with pytest.raises(ValueError):
        SoftRootSign(alpha=1.0, beta=3.0)  # beta >= e * alpha
    assert "alpha" in dict(SoftRootSign(trainable=False).named_buffers())


def test_two_batch_training(blobs):
    train, val = blobs
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), SoftRootSign(), nn.Linear(16, 3))
    alpha0 = float(model[1].alpha.detach())
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(model, cfg, train_data=train, val_data=val, num_classes=3).fit()
    assert res.history[0]["samples_trained"] == 64 and float(model[1].alpha.detach()) != alpha0


def test_models_take_srs_activation():
    import torch as _t

    from leandl.models import create_model
    from leandl.models.blocks import SoftRootSign as _SRS

    for name, shape in (("digits_cnn", [1, 8, 8]), ("mlp", [1, 8, 8])):
        m = create_model(name, num_classes=10, input_shape=shape, activation="srs")
        assert any(isinstance(x, _SRS) for x in m.modules()), name
        out = m(_t.randn(2, *shape))
        out.sum().backward()
        assert out.shape == (2, 10)
