"""``on_nan: skip_batch`` must not leave NaN batch-norm statistics, nor save them (issue 18, item 6)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from leandl.errors import TrainingError
from leandl.train import TrainConfig, Trainer
from leandl.train.trainer import non_finite_tensors


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], torch.tensor(i)


def _data(poison: bool):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 3
    x = torch.eye(4)[y] * 3 + 0.3 * torch.randn(64, 4, generator=g)
    if poison:
        x[5, 0] = float("nan")  # one corrupt sample: its batch's loss is NaN
    return _Indexed(x, y)


def _bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_skipped_batch_leaves_batchnorm_statistics_finite(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=16, progress=False, on_nan="skip_batch", max_nan_skips=10)
    trainer = Trainer(_bn_model(), cfg, train_data=_data(True), val_data=_data(False), num_classes=3,
                      run_dir=tmp_path)
    result = trainer.fit()
    assert result.metrics["nan_batches_skipped"] == 2  # one per epoch
    assert non_finite_tensors(result.model) == []
    saved = load_file(str(tmp_path / "resume" / "state.safetensors"))
    bad = [k for k, v in saved.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    assert bad == []  # the "last good" checkpoint really is good


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=16, progress=False)
    model = _bn_model()
    trainer = Trainer(model, cfg, train_data=_data(False), val_data=None, num_classes=3, run_dir=tmp_path)
    with torch.no_grad():
        model[1].running_var.fill_(float("inf"))  # e.g. statistics blown up by an overflowing batch
    with pytest.raises(TrainingError, match=r"non-finite values in 1\.running_var"):
        trainer.fit()
    assert not (tmp_path / "resume").exists()
