from __future__ import annotations

import math

import pytest
import torch

from leandl.techniques.sce import SCE, reverse_cross_entropy, sce_loss
from leandl.train import TrainConfig, Trainer


def test_values_hand_case():
    p = torch.tensor([[0.2, 0.5, 0.3]])
    q = torch.tensor([[0.0, 1.0, 0.0]])
    z = p.log()
    torch.testing.assert_close(reverse_cross_entropy(z, q), torch.tensor([4 * 0.5]), atol=1e-6, rtol=0)
    want = 0.1 * -math.log(0.5) + 1.0 * 4 * 0.5
    torch.testing.assert_close(sce_loss(z, q, 0.1, 1.0), torch.tensor([want]), atol=1e-6, rtol=0)


def test_gradient_is_ce_plus_scaled_mae():
    p = torch.tensor([[0.2, 0.5, 0.3]])
    q = torch.tensor([[0.0, 1.0, 0.0]])
    z = p.log().clone().requires_grad_(True)
    sce_loss(z, q, alpha=0.1, beta=1.0, log_zero=-4.0).sum().backward()
    want = 0.1 * (p - q) + 1.0 * 4.0 * 0.5 * (p - q)  # alpha (p-q) + beta (-A) p_y (p-q)
    torch.testing.assert_close(z.grad, want, atol=1e-6, rtol=1e-5)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    with pytest.raises(ValueError):
        SCE(log_zero=1.0)
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[SCE()]).fit()
    assert math.isfinite(res.history[0]["train_loss"])
