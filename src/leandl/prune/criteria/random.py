"""Random importance: the baseline every criterion must beat (seeded, reproducible)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from leandl.prune.criteria._base import Criterion
from leandl.prune.groups import ChannelGroup
from leandl.registry import CRITERIA

__all__ = ["RandomCriterion"]


@CRITERIA.register("random")
class RandomCriterion(Criterion):
    """Uniform random scores (baseline); ``seed`` plus the group name fix the draw.

    Args:
        seed: base seed.
    """

    needs_data = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def __call__(self, model: nn.Module, group: ChannelGroup,
                 batches: Iterable[Any] | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed + sum(map(ord, group.name)) * 7919)
        return torch.rand(group.size, generator=gen)
