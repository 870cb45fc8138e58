from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.techniques.ema import EMA, ema_decay, ema_update_
from leandl.train import TrainConfig, Trainer


def test_decay_warmup_hand_values():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 8) == pytest.approx(0.5)
    assert ema_decay(0.5, 100) == 0.5 and ema_decay(0.9, 0, warmup=False) == 0.9
    with pytest.raises(ValueError):
        EMA(decay=1.0)


def test_update_hand_values_and_buffers():
    lin, bn = nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1)
    model = nn.Sequential(lin, bn)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    avg = ema_update_({}, model, 0.9)  # first call copies
    with torch.no_grad():
        lin.weight.fill_(3.0)
        bn.running_mean.fill_(2.0)
        bn.num_batches_tracked.fill_(7)
    ema_update_(avg, model, 0.9)
    torch.testing.assert_close(avg["0.weight"], torch.tensor([[1.2]]), rtol=0, atol=1e-6)  # 0.9*1 + 0.1*3
    torch.testing.assert_close(avg["1.running_mean"], torch.tensor([0.2]), rtol=0, atol=1e-6)
    assert int(avg["1.num_batches_tracked"]) == 7  # integer buffers are copied


def test_swaps_average_in_and_resumes(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=2, batch_size=32, progress=False, checkpoint_every=0)
    tech = EMA(decay=0.5, warmup=False)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[tech]).fit()
    assert res.metrics["ema_updates"] == 4 and "ema_raw_val_accuracy" in res.metrics
    for k, v in mlp.state_dict().items():
        torch.testing.assert_close(v, tech.average[k])
    other = EMA(decay=0.5)
    other.load_state_dict(tech.state_dict())
    assert other.n_updates == 4 and set(other.average) == set(tech.average)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[EMA(0.9)]).fit()
    assert res.history[0]["samples_trained"] == 64 and res.metrics["ema_updates"] == 2
