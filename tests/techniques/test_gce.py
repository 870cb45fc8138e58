from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from leandl.techniques.gce import GCE, gce_loss
from leandl.train import TrainConfig, Trainer


def test_value_and_gradient_hand_case():
    p = torch.tensor([[0.2, 0.5, 0.3]])
    q = torch.tensor([[0.0, 1.0, 0.0]])
    z = p.log().clone().requires_grad_(True)
    loss = gce_loss(z, q, q=0.7)
    torch.testing.assert_close(loss.detach(), torch.tensor([(1 - 0.5**0.7) / 0.7]), atol=1e-6, rtol=0)
    loss.sum().backward()
    torch.testing.assert_close(z.grad, 0.5**0.7 * (p - q), atol=1e-6, rtol=1e-5)  # p_y^q (p - q)


def test_limits_ce_and_mae():
    z = torch.tensor([[0.3, -1.0, 2.0]])
    q = torch.tensor([[0.0, 1.0, 0.0]])
    ce = F.cross_entropy(z, torch.tensor([1]))
    torch.testing.assert_close(gce_loss(z, q, q=1e-4)[0], ce, atol=1e-3, rtol=1e-3)
    from leandl.techniques.mae import mae_loss

    torch.testing.assert_close(gce_loss(z, q, q=1.0), mae_loss(z, q) / 2, atol=1e-6, rtol=0)


def test_truncation_gives_constant_without_gradient():
    p = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    z = p.log().clone().requires_grad_(True)
    q = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    loss = gce_loss(z, q, q=0.7, truncate=0.5)
    assert float(loss[0].detach()) == pytest.approx((1 - 0.5**0.7) / 0.7)
    loss.sum().backward()
    assert float(z.grad[0].abs().sum()) == 0.0 and float(z.grad[1].abs().sum()) > 0


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    with pytest.raises(ValueError):
        GCE(q=0.0)
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[GCE()]).fit()
    assert math.isfinite(res.history[0]["train_loss"])
