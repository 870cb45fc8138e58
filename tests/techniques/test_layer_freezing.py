from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.techniques.layer_freezing import LayerFreezing, freeze_times, frozen_prefix
from leandl.train import TrainConfig, Trainer
from leandl.train.technique import Technique


def test_freeze_times_hand_values():
    assert freeze_times(3, 0.5) == [0.5, 0.75, 1.0]
    torch.testing.assert_close(torch.tensor(freeze_times(3, 0.5, "cubic")), torch.tensor([0.125, 0.421875, 1.0]))
    assert freeze_times(1, 0.5) == [1.0]
    with pytest.raises(ValueError):
        freeze_times(3, 0.0)


def test_frozen_prefix():
    times = [0.5, 0.75, 1.0]
    assert [frozen_prefix(times, p) for p in (0.0, 0.5, 0.8, 1.0)] == [0, 1, 2, 2]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def test_progressive_freezing_through_the_trainer(blobs):
    train, val = blobs
    model = _model()
    first = model[0].weight.detach().clone()
    cfg = TrainConfig(epochs=4, batch_size=32, progress=False, checkpoint_every=0)  # 8 steps
    tech = LayerFreezing(t0=0.5)  # times [0.5, 0.75, 1.0]: layer 0 frozen from step 4
    seen: list[bool] = []

    class Probe(Technique):
        name = "probe"

        def after_forward(self, state):
            seen.append(model[0].weight.requires_grad)

    res = Trainer(model, cfg, train_data=train, val_data=val, num_classes=3, techniques=[tech, Probe()]).fit()
    assert seen == [True] * 4 + [False] * 4
    # per sample saved with layer 0 frozen: weight grads 64 (its input grad was never computed);
    # with layers 0 and 2 frozen (from step 6): 64 + 2 * 256 = 576
    assert res.metrics["backward_macs_saved"] == 32 * (64 * 2 + 576 * 2)
    assert all(p.requires_grad for p in model.parameters())  # unfrozen at fit_end
    assert not torch.equal(first, model[0].weight)


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[LayerFreezing(0.5)]).fit()
    assert res.history[0]["samples_trained"] == 64 and "freeze_backward_fraction_saved" in res.metrics


def test_frozen_blocks_keep_their_batch_norm_statistics(blobs):
    train, val = blobs
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU()),
                          nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU()), nn.Linear(16, 3))
    stats: list[torch.Tensor] = []

    class Probe(Technique):
        name = "probe"
        order = 100

        def batch_end(self, state):
            stats.append(model[0][1].running_mean.clone())

    cfg = TrainConfig(epochs=4, batch_size=32, progress=False, checkpoint_every=0)  # 8 steps
    Trainer(model, cfg, train_data=train, val_data=val, num_classes=3,
            techniques=[LayerFreezing(t0=0.5, layers=["0", "1", "2"]), Probe()]).fit()
    # block 0 freezes from step 4 (progress 0.5): its statistics move before, never after
    assert not torch.equal(stats[0], stats[3])
    assert all(torch.equal(stats[3], s) for s in stats[4:])
