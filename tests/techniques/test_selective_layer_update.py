from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.errors import ConfigError
from leandl.models import create_model
from leandl.techniques.selective_layer_update import (
    SelectiveLayerUpdate,
    model_units,
    sample_frozen_units,
    set_trainable_,
    unit_forward_macs,
)
from leandl.train import State, TrainConfig, Trainer


def test_units_of_a_resnet_are_its_blocks():
    model = create_model("resnet20", num_classes=10, input_shape=(3, 8, 8))
    names = [n for n, _ in model_units(model)]
    assert names[0] == "stem" and names[-1] == "head"
    assert "layer1.0" in names and "layer3.2" in names and len(names) == 11
    with pytest.raises(ConfigError):
        model_units(model, ["nope"])


def test_unit_macs_hand_count():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    assert unit_forward_macs(model, torch.zeros(2, 4), ["0", "2"]) == {"0": 64, "2": 48}


def test_sampling_edges_and_rate():
    assert sample_frozen_units(["a", "b"], 0.0) == []
    assert sample_frozen_units(["a", "b"], 1.0) == ["a", "b"]
    g = torch.Generator().manual_seed(0)
    n = sum(len(sample_frozen_units(list("abcd"), 0.25, g)) for _ in range(1000))
    assert abs(n / 4000 - 0.25) < 0.03


def test_frozen_layer_gets_no_weight_gradient():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    set_trainable_(model[0], False)
    model(torch.randn(2, 4)).sum().backward()
    assert model[0].weight.grad is None and model[2].weight.grad is not None


def test_batch_start_freezes_before_forward_and_counts(mlp):
    st = State(model=mlp, num_classes=3)
    st.train_loader = [(torch.zeros(8, 4), torch.zeros(8, dtype=torch.long), torch.arange(8))]
    tech = SelectiveLayerUpdate(freeze_prob=0.999999, seed=0)  # always freezes the one candidate
    tech.fit_start(st)
    assert list(tech.units) == ["0"]  # the head ("2") is never a candidate
    st.inputs = torch.zeros(8, 4)
    tech.batch_start(st)
    assert not mlp[0].weight.requires_grad and mlp[2].weight.requires_grad
    assert st.counters["backward_macs_saved"] == 8 * 64
    tech.batch_end(st)
    assert mlp[0].weight.requires_grad


def test_two_batch_training_reports_savings(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3,
                  techniques=[SelectiveLayerUpdate(freeze_prob=0.5, seed=0)]).fit()
    assert res.history[0]["samples_trained"] == 64
    assert res.metrics["slu_backward_macs_baseline"] == 2 * 112 * 64
    assert 0.0 <= res.metrics["slu_backward_fraction_saved"] <= 64 / 112
    assert all(p.requires_grad for p in mlp.parameters())
