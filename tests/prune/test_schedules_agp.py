"""AGP: the cubic schedule by hand, and structured/unstructured gradual pruning through the Trainer."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from leandl.prune.schedules.agp import GradualPruning, agp_sparsity
from leandl.prune.unstructured import weight_sparsity
from leandl.train.config import TrainConfig
from leandl.train.trainer import Trainer


class _Data(Dataset):
    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 1, 6, 6, generator=g)
        self.y = torch.arange(n) % 3

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i], torch.tensor(i)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))


def _fit(model: nn.Module, tech, epochs: int = 2) -> Trainer:
    cfg = TrainConfig(epochs=epochs, batch_size=8, progress=False, checkpoint_every=0, lr=0.01)
    tr = Trainer(model, cfg, train_data=_Data(), val_data=_Data(8), num_classes=3, techniques=[tech])
    tr.result = tr.fit()
    return tr


def test_cubic_schedule_by_hand() -> None:
    kw = {"initial": 0.0, "final": 0.8, "start_step": 10, "n_steps": 4, "frequency": 10}
    # s_t = 0.8 - 0.8 (1 - (t - 10) / 40)^3 at the last pruning point t
    expected = {5: 0.0, 10: 0.0, 19: 0.0, 20: 0.8 - 0.8 * 0.75**3, 25: 0.8 - 0.8 * 0.75**3,
                30: 0.8 - 0.8 * 0.5**3, 40: 0.8 - 0.8 * 0.25**3, 50: 0.8, 500: 0.8}
    for step, s in expected.items():
        assert agp_sparsity(step, **kw) == pytest.approx(s, abs=1e-12), step
    assert agp_sparsity(20, **kw) == pytest.approx(0.4625)
    assert agp_sparsity(10, initial=0.2, final=0.8, start_step=10, n_steps=4, frequency=10) == pytest.approx(0.2)


def test_plan_and_invalid_arguments() -> None:
    t = GradualPruning(final_sparsity=0.5, start=0.25, end=0.75, frequency=5)
    assert t.plan(max_steps=100, steps_per_epoch=10) == (25, 10, 5)
    with pytest.raises(ValueError):
        GradualPruning(final_sparsity=1.0)
    with pytest.raises(ValueError):
        GradualPruning(start=0.5, end=0.5)


def test_structured_gradual_pruning_shrinks_model_over_time() -> None:
    tech = GradualPruning(final_sparsity=0.5, start=0.0, end=0.5, frequency=1, criterion="l1")
    tr = _fit(_net(), tech, epochs=2)  # 4 steps: t0=0, n=2, dt=1 -> s = 0, 0.4375, 0.5, 0.5
    steps = dict(tech.history)
    assert steps[1] == pytest.approx(0.5 - 0.5 * 0.5**3)
    assert steps[2] == pytest.approx(0.5)
    model = tr.result.model
    # the first conv is left alone (input side); the 16-channel conv lost half its channels
    assert model[3].out_channels == 8 and model[4].num_features == 8 and model[8].in_features == 8
    assert model(torch.randn(2, 1, 6, 6)).shape == (2, 3)
    assert tr.result.metrics["agp_measured_sparsity"] == pytest.approx(0.5)


def test_unstructured_gradual_pruning_folds_masks() -> None:
    tech = GradualPruning(final_sparsity=0.75, end=0.5, frequency=1, mode="unstructured", scope="global",
                          ignored_layers=[])
    tr = _fit(_net(), tech, epochs=2)
    assert weight_sparsity(tr.result.model) == pytest.approx(0.75, abs=0.01)
    assert not any(n.endswith("_mask") for n, _ in tr.result.model.named_buffers())
