"""The :class:`Criterion` base class and name lookup."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from leandl.errors import UsageError
from leandl.prune.groups import ChannelGroup

__all__ = ["Criterion", "get_criterion", "as_batches"]


class Criterion:
    """Scores the units of a :class:`ChannelGroup`; higher = more important.

    Attributes:
        needs_data: whether ``batches`` must be given.
    """

    needs_data: bool = False

    def __call__(self, model: nn.Module, group: ChannelGroup,
                 batches: Iterable[Any] | None = None) -> torch.Tensor:
        raise UsageError(f"{type(self).__name__} does not define __call__")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def get_criterion(criterion: str | Criterion, **kwargs: Any) -> Criterion:
    """A criterion instance from a registered name (``"l1"``) or an instance."""
    if isinstance(criterion, Criterion):
        return criterion
    from leandl.registry import CRITERIA

    return CRITERIA.get(str(criterion))(**kwargs)


def as_batches(batches: Iterable[Any] | None, name: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Materialise ``(inputs, targets)`` batches; raise a UsageError naming ``name`` if absent."""
    if batches is None:
        raise UsageError(f"criterion '{name}' needs data: pass batches=[(inputs, targets), ...]",
                         fix="give a few training batches, or use criterion 'l1'")
    out = []
    for b in batches:
        x, y = (b[0], b[1]) if isinstance(b, (tuple, list)) else (b["inputs"], b["targets"])
        out.append((x, y))
    if not out:
        raise UsageError(f"criterion '{name}' got an empty list of batches")
    return out
