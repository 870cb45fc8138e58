from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.errors import ConfigError, ModelError
from leandl.techniques.maxdropout import MaxDropout, MaxDropoutTechnique, max_dropout
from leandl.train import State, TrainConfig, Trainer


def test_drops_the_largest_normalised_values():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])  # normalised 0, .25, .5, .75, 1
    torch.testing.assert_close(max_dropout(x, 0.3), torch.tensor([0.0, 1.0, 2.0, 0.0, 0.0]))
    torch.testing.assert_close(max_dropout(x, 0.0), x)
    torch.testing.assert_close(max_dropout(x, 0.3, training=False), x)
    # negative values: min -2 max 2 -> normalised 0, .25, .5, .75, 1 the same
    torch.testing.assert_close(max_dropout(x - 2.0, 0.5), torch.tensor([-2.0, -1.0, 0.0, 0.0, 0.0]))


def test_per_sample_normalisation():
    x = torch.tensor([[0.0, 1.0, 2.0], [10.0, 20.0, 30.0]])
    torch.testing.assert_close(max_dropout(x, 0.4, per_sample=True), torch.tensor([[0.0, 1.0, 0.0], [10.0, 20.0, 0.0]]))
    # whole-tensor min/max drops the entire second row above 0.6 * 30
    torch.testing.assert_close(max_dropout(x, 0.4), torch.tensor([[0.0, 1.0, 2.0], [10.0, 0.0, 0.0]]))


def test_gradient_flows_only_through_survivors():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], requires_grad=True)
    max_dropout(x, 0.3).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]))


def test_module_is_identity_in_eval():
    m = MaxDropout(0.5).eval()
    x = torch.randn(4, 3)
    assert torch.equal(m(x), x)


def test_technique_swaps_dropout_and_restores(blobs):
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    tech = MaxDropoutTechnique()
    st = State(model=model, num_classes=3)
    tech.fit_start(st)
    assert isinstance(model[2], MaxDropout) and model[2].rate == 0.2
    tech.fit_end(st)
    assert type(model[2]) is nn.Dropout
    with pytest.raises(ModelError):
        MaxDropoutTechnique().fit_start(State(model=nn.Linear(2, 2), num_classes=2))
    with pytest.raises(ConfigError):
        MaxDropoutTechnique(after=["nope"]).fit_start(State(model=nn.Sequential(nn.Linear(2, 2)), num_classes=2))


def test_two_batch_training_with_hooks(mlp, blobs):
    train, val = blobs
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, checkpoint_every=0)
    tech = MaxDropoutTechnique(rate=0.3, after=["1"])
    res = Trainer(mlp, cfg, train_data=train, val_data=val, num_classes=3, techniques=[tech]).fit()
    assert res.history[0]["samples_trained"] == 64 and res.metrics["maxdropout_layers"] == 1
    assert not mlp[1]._forward_hooks  # hooks removed at fit_end
