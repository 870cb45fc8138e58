from __future__ import annotations

import math

import pytest
import torch

from leandl.techniques.imae import IMAE, imae_loss, imae_weights
from leandl.techniques.mae import mae_loss
from leandl.train import TrainConfig, Trainer


def test_weight_hand_values():
    torch.testing.assert_close(imae_weights(torch.tensor([0.5, 0.0, 1.0]), 8.0),
                               torch.tensor([math.exp(2.0), 1.0, 1.0]))


def test_gradient_is_mae_direction_with_exponential_weight():
    p = torch.tensor([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    q = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    z = p.log().clone().requires_grad_(True)
    imae_loss(z, q, temperature=8.0, normalize=False).mean().backward()
    p_y = torch.tensor([0.5, 0.8])
    w = torch.exp(8.0 * p_y * (1 - p_y))
    want = (p - q) * (w / (2 * (1 - p_y)))[:, None] / 2  # trainer mean: 1/N
    torch.testing.assert_close(z.grad, want, atol=1e-6, rtol=1e-5)
    # same direction as MAE's gradient 2 p_y (p - q), ratio w_IMAE / w_MAE
    z2 = p.log().clone().requires_grad_(True)
    mae_loss(z2, q).mean().backward()
    ratio = w / (4 * p_y * (1 - p_y))
    torch.testing.assert_close(z.grad, z2.grad * ratio[:, None], atol=1e-6, rtol=1e-5)


def test_normalised_gradient_sums_to_one_in_l1():
    p = torch.tensor([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])
    q = torch.eye(3)[[1, 2, 1]]
    z = p.log().clone().requires_grad_(True)
    imae_loss(z, q).mean().backward()
    assert float(z.grad.abs().sum()) == pytest.approx(1.0, abs=1e-5)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    with pytest.raises(ValueError):
        IMAE(temperature=-1.0)
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[IMAE()]).fit()
    assert math.isfinite(res.history[0]["train_loss"])
