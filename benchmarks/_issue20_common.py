"""Shared pieces of ``issue20_existing.py``: data, training, accuracy, memoised models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from leandl.data import load_data
from leandl.models import create_model
from leandl.registry import TECHNIQUES
from leandl.train.config import TrainConfig
from leandl.train.trainer import Trainer

SMALL = 3000  # MNIST-1D samples: 2160 train / 240 val / 600 test
_MEMO: dict[Any, Any] = {}


def memo(key: Any, fn: Callable[[], Any]) -> Any:
    """Compute once per process (baselines and teachers shared by groups run together)."""
    if key not in _MEMO:
        _MEMO[key] = fn()
    return _MEMO[key]


def remember(key: Any, value: Any) -> None:
    """Store a value for a later method of the same group (e.g. a MACs fraction to match)."""
    _MEMO[key] = value


def mnist1d(seed: int, n: int = SMALL) -> Any:
    return memo(("mnist1d", n, seed), lambda: load_data("mnist1d", num_samples=n, seed=seed))


def digits(seed: int) -> Any:
    return memo(("digits", seed), lambda: load_data("digits", seed=seed))


def tech(name: str, **kw: Any) -> Any:
    return TECHNIQUES.get(name)(**kw)


def build(name: str, seed: int, data: Any, **kw: Any) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, num_classes=data.num_classes, input_shape=list(data.input_shape), **kw)


def cnn(seed: int, data: Any, width: int = 8, **kw: Any) -> nn.Module:
    return build("mnist1d_cnn", seed, data, width=width, **kw)


def fit(model: nn.Module, data: Any, epochs: int, seed: int, techniques: list | tuple = (), *,
        optimizer: str = "adam", lr: float = 3e-3, weight_decay: float = 1e-4, schedule: str = "cosine",
        train: Any = None, batch_size: int = 64) -> nn.Module:
    """Train in place (final-epoch weights, no validation); returns the model in eval mode."""
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
                      schedule=schedule, seed=seed, progress=False, checkpoint_every=0, log_every=0)
    Trainer(model, cfg, train_data=train if train is not None else data.train, val_data=None,
            num_classes=data.num_classes, techniques=list(techniques)).fit()
    return model.eval()


@torch.no_grad()
def accs(model: nn.Module, split: Any) -> list[float]:
    """Accuracy of every output (a list for multi-output models)."""
    model.eval()
    out = model(split.inputs)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [float((o.argmax(-1) == split.targets).float().mean()) for o in outs]


def acc(model: nn.Module, split: Any) -> float:
    return accs(model, split)[-1]


def exits_model(seed: int, data: Any, width: int = 16) -> nn.Module:
    """mnist1d_cnn with pooled MLP exits after stem, layer1, layer2 (4 exits with the head)."""
    from leandl.dynamic import attach_exits

    net = cnn(seed, data, width=width)
    return attach_exits(net, ["stem", "layer1", "layer2"], head="mlp", pool=4, hidden=64)


def teacher(seed: int, data: Any, key: str = "small", epochs: int = 15) -> nn.Module:
    """The distillation teacher: mnist1d_cnn width 32, trained on ``data`` (memoised)."""
    return memo(("teacher", key, seed), lambda: fit(cnn(seed + 1000, data, width=32), data, epochs, seed))
