from __future__ import annotations

import pytest
import torch
from torch import nn

from leandl.errors import ConfigError
from leandl.nas.cell import Cell, edge_list, out_size, reduction_plan


def test_edges_plan_and_sizes():
    assert edge_list(2) == [(0, 1), (0, 2), (1, 2)]
    assert reduction_plan(3) == [False, True, True]
    assert reduction_plan(6) == [False, False, True, False, True, False]
    assert out_size(40, 2) == 10 and out_size(5, 1) == 3
    with pytest.raises(ConfigError, match="cells"):
        reduction_plan(0)


class _Scale(nn.Module):
    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = a

    def forward(self, x):
        return self.a * x


def test_cell_sums_edges_into_nodes_and_nodes_into_the_output():
    # n1 = 2 s0 ; n2 = 3 s0 + 5 n1 = 13 s0 ; out = n1 + n2 = 15 s0 (no preprocess: same width)
    scales = {(0, 1): 2.0, (0, 2): 3.0, (1, 2): 5.0}
    cell = Cell(4, 4, False, 2, 1, True, edge_list(2), lambda j, i, s: _Scale(scales[(j, i)]))
    x = torch.randn(2, 4, 6)
    torch.testing.assert_close(cell(x), 15 * x)
    # a derived cell keeps only some edges: n1 = 2 s0, n2 = 5 n1 -> out = 12 s0
    cell = Cell(4, 4, False, 2, 1, True, [(0, 1), (1, 2)], lambda j, i, s: _Scale(scales[(j, i)]))
    torch.testing.assert_close(cell(x), 12 * x)
