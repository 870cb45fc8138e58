from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from leandl.errors import ConfigError
from leandl.techniques.gce import GCE
from leandl.techniques.mae import MAE, mae_loss
from leandl.train import State, TrainConfig, Trainer


def test_mae_value_and_gradient_hand_case():
    z = torch.tensor([[math.log(0.2), math.log(0.5), math.log(0.3)]], requires_grad=True)
    q = torch.tensor([[0.0, 1.0, 0.0]])
    loss = mae_loss(z, q)
    torch.testing.assert_close(loss, torch.tensor([1.0]), atol=1e-6, rtol=0)  # 2 (1 - 0.5)
    loss.sum().backward()
    p = torch.tensor([[0.2, 0.5, 0.3]])
    torch.testing.assert_close(z.grad, 2 * 0.5 * (p - q), atol=1e-6, rtol=0)  # 2 p_y (p - q)
    assert float(z.grad.abs().sum()) == pytest.approx(4 * 0.5 * 0.5, abs=1e-6)  # weight 4 p (1-p)


def test_mae_downweights_confidently_wrong_samples_relative_to_ce():
    """MAE's gradient weight at p_y=0.01 is ~50x smaller than CE's (robust to wrong labels)."""
    q = torch.tensor([[1.0, 0.0]])
    z = torch.tensor([[math.log(0.01), math.log(0.99)]], requires_grad=True)
    mae_loss(z, q).sum().backward()
    g_mae = z.grad.abs().sum()
    z.grad = None
    F.cross_entropy(z, torch.tensor([0])).backward()
    assert float(g_mae) < float(z.grad.abs().sum()) / 40


def test_two_loss_replacements_rejected(mlp):
    st = State(model=mlp, num_classes=3)
    MAE().fit_start(st)
    with pytest.raises(ConfigError, match="already"):
        GCE().fit_start(st)
    with pytest.raises(ValueError):
        MAE(scale=0.0)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    tech = MAE()
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[tech]).fit()
    assert len(res.history) == 1 and math.isfinite(res.history[0]["train_loss"])
