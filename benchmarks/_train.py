"""Training helper shared by the quantization benchmarks (Adam, cosine, no weight decay)."""

from __future__ import annotations

from typing import Any

from torch import nn

from leandl.train.config import TrainConfig
from leandl.train.trainer import Trainer

__all__ = ["fit"]


def fit(model: nn.Module, data: Any, epochs: int, lr: float, seed: int, techniques: Any = ()) -> nn.Module:
    """Train ``model`` in place on ``data.train`` with ``techniques``; return it in eval mode."""
    cfg = TrainConfig(epochs=epochs, batch_size=64, optimizer="adam", lr=lr, weight_decay=0.0,
                      schedule="cosine", seed=seed, progress=False)
    Trainer(model, cfg, train_data=data.train, val_data=None, num_classes=data.num_classes,
            techniques=list(techniques)).fit()
    return model.eval()
