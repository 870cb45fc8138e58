from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.techniques.minibatch_dropping import MinibatchDropping, drop_minibatch, forward_macs_per_sample
from leandl.train import TrainConfig, Trainer


def test_drop_decision_edges_and_rate():
    assert drop_minibatch(0.0) is False and drop_minibatch(1.0) is True
    g = torch.Generator().manual_seed(0)
    draws = [drop_minibatch(0.5, g) for _ in range(4000)]
    assert abs(sum(draws) / 4000 - 0.5) < 0.03
    with pytest.raises(ValueError):
        MinibatchDropping(rate=1.0)


def test_forward_macs_hand_count():
    # Linear 4->16 (64 MACs) + Linear 16->3 (48 MACs) per sample
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    assert forward_macs_per_sample(model, torch.zeros(5, 4)) == 112


def test_skips_cost_nothing_and_are_counted(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=2, batch_size=8, progress=False, checkpoint_every=0)  # 16 batches
    tech = MinibatchDropping(rate=0.5, seed=1)
    before = [p.detach().clone() for p in mlp.parameters()]
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[tech]).fit()
    skipped = res.metrics["batches_skipped"]
    assert 0 < skipped < 16
    trained = sum(h["samples_trained"] for h in res.history)
    assert trained == (16 - skipped) * 8  # skipped batches never reach the forward pass
    assert res.metrics["macs_saved"] == 3 * 112 * 8 * skipped
    assert res.metrics["smd_fraction_skipped"] == pytest.approx(skipped / 16)
    assert any(not torch.equal(a, b) for a, b in zip(before, mlp.parameters(), strict=True))


def test_resume_state_round_trips_through_the_resume_format(tmp_path):
    from leandl.serialization import load_tree, save_tree

    a, b = MinibatchDropping(0.5, seed=3), MinibatchDropping(0.5, seed=99)
    for _ in range(7):
        drop_minibatch(0.5, a.generator)
    save_tree({"t": a.state_dict()}, tmp_path, "state")
    b.load_state_dict(load_tree(tmp_path, "state")["t"])
    assert [drop_minibatch(0.5, a.generator) for _ in range(10)] == [drop_minibatch(0.5, b.generator) for _ in range(10)]


def test_two_batch_training(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3,
                  techniques=[MinibatchDropping(rate=0.0)]).fit()
    assert res.history[0]["samples_trained"] == 64 and res.metrics["smd_batches_skipped"] == 0
