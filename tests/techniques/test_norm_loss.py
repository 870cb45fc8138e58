from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.techniques.norm_loss import NormLoss, norm_loss, norm_loss_layers
from leandl.train import TrainConfig, Trainer


def test_hand_values():
    w = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # row norms 5 and 1
    torch.testing.assert_close(norm_loss([w]), torch.tensor(16.0))
    torch.testing.assert_close(norm_loss([w], "mean"), torch.tensor(8.0))
    conv = torch.zeros(2, 1, 2, 2)
    conv[0] = 0.5  # norm 1 -> 0; filter 1 norm 0 -> 1
    torch.testing.assert_close(norm_loss([w, conv]), torch.tensor(17.0))
    with pytest.raises(ValueError):
        norm_loss([w], "max")


def test_gradient_matches_formula():
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4]], requires_grad=True)  # norms 5 and 0.5
    norm_loss([w]).backward()
    # d/dw (1 - |w|)^2 = -2 (1 - |w|) w / |w|
    want = torch.tensor([[8 * 0.6, 8 * 0.8], [-1 * 0.6, -1 * 0.8]])
    torch.testing.assert_close(w.grad, want, rtol=1e-5, atol=1e-6)


def test_layers_and_head_exclusion():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3))
    assert len(norm_loss_layers(model)) == 2 and len(norm_loss_layers(model, include_head=False)) == 1


def test_pulls_norms_towards_one():
    torch.manual_seed(0)
    lin = nn.Linear(8, 4)
    with torch.no_grad():
        lin.weight.mul_(10)
    opt = torch.optim.SGD(lin.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        norm_loss([lin.weight]).backward()
        opt.step()
    torch.testing.assert_close(lin.weight.norm(dim=1), torch.ones(4), rtol=0, atol=1e-3)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[NormLoss(1e-2)]).fit()
    assert res.history[0]["samples_trained"] == 64
    assert res.metrics["norm_loss_layers"] == 2 and res.metrics["norm_loss_final"] > 0
