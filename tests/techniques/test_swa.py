from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.techniques.swa import SWA, swa_average_, update_bn
from leandl.train import TrainConfig, Trainer


def test_average_hand_values():
    lin = nn.Linear(1, 1, bias=False)
    avg: dict[str, torch.Tensor] = {}
    n = 0
    for v in (1.0, 2.0, 6.0):
        with torch.no_grad():
            lin.weight.fill_(v)
        n = swa_average_(avg, lin, n)
    assert n == 3
    torch.testing.assert_close(avg["weight"], torch.tensor([[3.0]]))


def test_update_bn_equals_manual_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(40, 3) * 2 + 1
    loader = [(x[i:i + 10], torch.zeros(10), torch.arange(10)) for i in range(0, 40, 10)]
    model[1].running_mean.fill_(5.0)
    assert update_bn(model, loader) == 1
    with torch.no_grad():
        h = model[0](x)  # (40, 4)
    # cumulative average over equal batches: mean of the batch means / unbiased batch variances
    means = torch.stack([h[i:i + 10].mean(0) for i in range(0, 40, 10)]).mean(0)
    vars_ = torch.stack([h[i:i + 10].var(0, unbiased=True) for i in range(0, 40, 10)]).mean(0)
    torch.testing.assert_close(model[1].running_mean, means, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[1].running_var, vars_, rtol=1e-5, atol=1e-6)
    assert model[1].momentum == 0.1 and model.training


def test_update_bn_matches_torch_swa_utils():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
    b = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
    b.load_state_dict(a.state_dict())
    xs = [torch.randn(8, 1, 6, 6) for _ in range(3)]
    update_bn(a, [(x, None) for x in xs])
    torch.optim.swa_utils.update_bn([x for x in xs], b)
    torch.testing.assert_close(a[1].running_var, b[1].running_var)
    torch.testing.assert_close(a[1].running_mean, b[1].running_mean)


def test_two_batch_training_swaps_average(blobs):
    train, val = blobs
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    cfg = TrainConfig(epochs=2, batch_size=32, progress=False, checkpoint_every=0)
    tech = SWA(start=0.0, swa_lr=0.01)
    res = Trainer(model, cfg, train_data=train, val_data=val, num_classes=3, techniques=[tech]).fit()
    assert res.metrics["swa_epochs_averaged"] == 2 and res.metrics["swa_bn_layers_updated"] == 1
    for k, p in model.named_parameters():
        torch.testing.assert_close(p, tech.average[k])
    with pytest.raises(ValueError):
        SWA(start=1.0)
