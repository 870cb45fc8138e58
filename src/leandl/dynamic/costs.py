"""Cost account of a multi-exit model: cumulative MACs per exit and expected MACs per sample.

A sample that leaves at exit k (0-indexed) has paid for segments 0..k and exit heads 0..k
(every earlier head was evaluated to decide it should go on): ``C_k = sum_{j<=k} (S_j + H_j)``,
counted with :func:`leandl.measure.count_macs` (PyTorch's ``FlopCounterMode``: conv, linear,
matmul, attention; BN, pooling and elementwise ops not counted). With exit fractions ``f_k`` the
expected cost per sample is ``E[MACs] = sum_k f_k C_k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from leandl.dynamic.multi_exit import MultiExit
from leandl.measure import count_macs

__all__ = ["exit_costs", "backbone_macs", "expected_macs", "exit_fractions"]


class _Prefix(nn.Module):
    """Runs a multi-exit model up to and including exit ``k``."""

    def __init__(self, model: MultiExit, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_prefix(x, self.k)


def _example(model: nn.Module, input_shape: Sequence[int]) -> Tensor:
    p = next(model.parameters(), None)
    return torch.zeros(1, *input_shape, device=p.device if p is not None else "cpu")


def exit_costs(model: MultiExit, input_shape: Sequence[int]) -> list[int]:
    """Cumulative per-sample MACs ``[C_1, ..., C_K]`` of exiting at each exit (non-decreasing)."""
    x = _example(model, input_shape)
    return [count_macs(_Prefix(model, k), x).total for k in range(model.num_exits)]


def backbone_macs(model: MultiExit, input_shape: Sequence[int]) -> int:
    """Per-sample MACs of the plain backbone (the full network without exit heads)."""
    return count_macs(model.backbone, _example(model, input_shape)).total


def exit_fractions(exit_index: Tensor, num_exits: int) -> list[float]:
    """Fraction of samples leaving at each exit, from per-sample exit indices ``(N,)``."""
    counts = torch.bincount(exit_index.long().cpu(), minlength=num_exits).float()
    return (counts / max(1, exit_index.numel())).tolist()


def expected_macs(fractions: Sequence[float], costs: Sequence[int]) -> float:
    """``sum_k f_k C_k``: expected MACs per sample.

    Example:
        >>> expected_macs([0.5, 0.5], [10, 30])
        20.0
    """
    if len(fractions) != len(costs):
        raise ValueError(f"{len(fractions)} fractions for {len(costs)} exits")
    return float(sum(f * c for f, c in zip(fractions, costs, strict=True)))
