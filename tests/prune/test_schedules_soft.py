"""SFP / ASFP: the rate over time by hand, recovery of zeroed filters, removal at the end."""

from __future__ import annotations

import math

import pytest
import torch

from leandl.prune.schedules.soft import SoftPruning, asfp_constants, soft_pruning_rate
from tests.prune.test_schedules_agp import _fit, _net


def test_sfp_rate_is_constant_and_asfp_meets_its_three_conditions() -> None:
    assert [soft_pruning_rate(t, final=0.3, total_epochs=8) for t in (0, 4, 8)] == [0.3, 0.3, 0.3]
    a, k, b = asfp_constants(0.4, 8.0)
    x = math.exp(-k * 2.0)  # e^{-k t_max / 4}
    assert 1 + x + x**2 + x**3 == pytest.approx(4 / 3, abs=1e-9)
    assert x == pytest.approx(0.2527, abs=1e-3)
    rate = lambda t: soft_pruning_rate(t, final=0.4, total_epochs=8, asymptotic=True)  # noqa: E731
    assert rate(0) == pytest.approx(0.0, abs=1e-12)
    assert rate(2) == pytest.approx(0.3)   # P'(t_max / 4) = 3/4 P
    assert rate(8) == pytest.approx(0.4)
    # P'(4) = a (x^2 - 1) with a = P / (x^4 - 1): = P (x^2 - 1) / (x^4 - 1) = P / (1 + x^2)
    assert rate(4) == pytest.approx(0.4 / (1 + x**2), abs=1e-9)


def test_soft_pruning_trains_then_removes_units() -> None:
    tech = SoftPruning(ratio=0.5, criterion="l2")
    tr = _fit(_net(), tech, epochs=2)
    assert [r for _, r in tech.rates] == [0.5, 0.5, 0.5]
    assert tr.result.model[3].out_channels == 8
    assert tr.result.model(torch.randn(2, 1, 6, 6)).shape == (2, 3)


def test_zeroed_filters_keep_receiving_gradients() -> None:
    from leandl.prune.schedules import _masks as M

    model = _net()
    with torch.no_grad():
        model[4].bias.fill_(0.1)  # a trained BN shift (at beta = 0 the ReLU gradient is exactly 0)
    x = torch.randn(4, 1, 6, 6)
    groups = M.discover_groups(model, x)
    scores = M.criterion_scores(model, groups, "l2")
    masks = M.masks_from_scores(scores, M.prune_counts(scores, 0.5))
    M.zero_filters_(model, groups, masks)  # what SFP does between selections
    name = groups[0].name
    pruned = (~masks[name]).nonzero().flatten()
    w = model.get_submodule(name).weight
    assert float(w.detach()[pruned].abs().sum()) == 0.0
    model(x).square().sum().backward()
    assert float(w.grad[pruned].abs().sum()) > 0.0  # the filter can recover
