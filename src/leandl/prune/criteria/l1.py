"""L1 filter norm (Li et al., "Pruning Filters for Efficient ConvNets", arXiv 1608.08710).

Importance of unit j: :math:`s_j = \\sum |W_j|` over every producing conv/linear weight of the
group (for a residual group: all tied convs). Cheap, data-free; norms are not comparable
across layers, so global pruning normalises by the group mean (see :func:`leandl.prune_`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from leandl.prune.criteria._base import Criterion
from leandl.prune.groups import ChannelGroup, unit_weights
from leandl.registry import CRITERIA

__all__ = ["L1"]


@CRITERIA.register("l1")
class L1(Criterion):
    """L1 norm of each unit's producing filters (Li et al. 2017, arXiv 1608.08710)."""

    needs_data = False

    def __call__(self, model: nn.Module, group: ChannelGroup,
                 batches: Iterable[Any] | None = None) -> torch.Tensor:
        return unit_weights(model, group).abs().sum(dim=1)
