"""CHEX prune-and-regrow: regrow fraction by hand, leverage scores, regrow probabilities, a fit."""

from __future__ import annotations

import math

import pytest
import torch

from leandl.prune.schedules.regrow import PruneRegrow, leverage_scores, regrow_fraction, regrow_probabilities
from tests.prune.test_schedules_agp import _fit, _net


def test_regrow_fraction_cosine_by_hand() -> None:
    vals = [regrow_fraction(t, initial=0.2, updates=4) for t in range(6)]
    assert vals == pytest.approx([0.2, 0.1 * (1 + math.cos(math.pi / 4)), 0.1, 0.1 * (1 + math.cos(3 * math.pi / 4)),
                                  0.0, 0.0])


def test_leverage_scores_and_regrow_probabilities_by_hand() -> None:
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.1]])
    # singular subspace of rank 2 = rows 1 and 0 (largest singular values 2 and 1): leverage 1, 1, 0
    torch.testing.assert_close(leverage_scores(x, 2), torch.tensor([1.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    cand = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = regrow_probabilities(cand, torch.tensor([[2.0, 0.0]]))  # residuals 0 and 1
    torch.testing.assert_close(p, torch.tensor([1 / (1 + math.e), math.e / (1 + math.e)]), atol=1e-6, rtol=0)


def test_prune_regrow_sparsity_over_time() -> None:
    tech = PruneRegrow(sparsity=0.5, regrow=0.25, period=1, explore_until=1.0)
    tr = _fit(_net(), tech, epochs=2)
    # start at S - delta_0 = 0.25 of the 16 units (4 masked); updates t=1 (delta 0.125 -> 6 masked
    # after regrow), t=2 = T (delta 0 -> 8 masked)
    assert [h["sparsity"] for h in tech.history] == pytest.approx([0.25, 0.375, 0.5])
    assert tr.result.model[3].out_channels == 8
