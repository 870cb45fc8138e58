"""Tiny shared fixtures: models, data, a hand-built State, a fast recipe."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

sys.path.insert(0, os.path.dirname(__file__))
from tests_helpers import fast_recipe  # noqa: E402

os.environ.setdefault("LEANDL_QUIET", "1")

# PyPI's torchvision (a CUDA build) dies on import beside the CPU torch these machines pin, and
# timm and transformers import it; import it once through leandl's shim so that tests (and the
# libraries they import) find it importable whatever their order. See leandl._compat_torchvision.
if importlib.util.find_spec("torchvision") is not None:
    from leandl._compat_torchvision import import_torchvision

    import_torchvision()


class IndexedTensors(Dataset):
    """(input, target, index) items over in-memory tensors."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i], torch.tensor(i)


@pytest.fixture
def blobs() -> tuple[IndexedTensors, IndexedTensors]:
    """64 train / 32 val samples of 4 features, 3 linearly separable classes."""
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]])
    y = torch.arange(96) % 3
    x = centers[y] + 0.3 * torch.randn(96, 4, generator=g)
    return IndexedTensors(x[:64], y[:64]), IndexedTensors(x[64:], y[64:])


@pytest.fixture
def mlp() -> nn.Module:
    """A 2-layer MLP for 4 features and 3 classes."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


@pytest.fixture
def tiny_recipe() -> dict[str, Any]:
    """See :func:`fast_recipe`."""
    return fast_recipe()
