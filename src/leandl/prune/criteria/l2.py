"""L2 filter norm (the SFP variant of Li et al.; He et al., arXiv 1808.06866).

Importance of unit j: :math:`s_j = \\lVert W_j \\rVert_2` over the unit's producing weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from leandl.prune.criteria._base import Criterion
from leandl.prune.groups import ChannelGroup, unit_weights
from leandl.registry import CRITERIA

__all__ = ["L2"]


@CRITERIA.register("l2")
class L2(Criterion):
    """L2 norm of each unit's producing filters (SFP, arXiv 1808.06866)."""

    needs_data = False

    def __call__(self, model: nn.Module, group: ChannelGroup,
                 batches: Iterable[Any] | None = None) -> torch.Tensor:
        return unit_weights(model, group).norm(dim=1)
