"""FPGM: filter pruning via geometric median (He et al., CVPR 2019, arXiv 1811.00250).

Importance of unit j: :math:`D_j = \\sum_k \\lVert w_j - w_k \\rVert_2`, the summed distance of
its flattened filter to all others in the group. The unit with the smallest :math:`D_j` is
closest to the geometric median, i.e. the most replaceable, so it is pruned first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from leandl.prune.criteria._base import Criterion
from leandl.prune.groups import ChannelGroup, unit_weights
from leandl.registry import CRITERIA

__all__ = ["FPGM"]


@CRITERIA.register("fpgm")
class FPGM(Criterion):
    """Summed L2 distance to the group's other filters (FPGM, arXiv 1811.00250)."""

    needs_data = False

    def __call__(self, model: nn.Module, group: ChannelGroup,
                 batches: Iterable[Any] | None = None) -> torch.Tensor:
        w = unit_weights(model, group).double()
        return torch.cdist(w, w, p=2).sum(dim=1).float()
