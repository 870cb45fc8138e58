"""SRFP / ASRFP: the decay factor by hand, decayed (not zeroed) filters, removal at the end."""

from __future__ import annotations

import math

import pytest
import torch

from leandl.prune.schedules import _masks as M
from leandl.prune.schedules.softer import SofterPruning, decay_factor, scale_filters_
from leandl.train import Technique
from tests.prune.test_schedules_agp import _fit, _net


def test_decay_factor_by_hand() -> None:
    assert [decay_factor(t, 4) for t in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert decay_factor(2, 4, "cosine") == pytest.approx(0.5)
    assert decay_factor(1, 4, "cosine") == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert decay_factor(9, 4) == 0.0 and decay_factor(4, 4, "cosine") == pytest.approx(0.0)
    with pytest.raises(ValueError, match="decay"):
        decay_factor(1, 4, "step")
    with pytest.raises(ValueError, match="decay"):
        SofterPruning(decay="exp")


def test_scale_filters_multiplies_only_the_pruned_producers() -> None:
    model = _net()
    x = torch.randn(2, 1, 6, 6)
    groups = M.discover_groups(model, x)
    scores = M.criterion_scores(model, groups, "l2")
    masks = M.masks_from_scores(scores, M.prune_counts(scores, 0.5))
    g = groups[0].name
    conv = model.get_submodule(g)
    gamma0 = model.get_submodule(str(int(g) + 1)).weight.detach().clone()
    with torch.no_grad():
        model.get_submodule(str(int(g) + 1)).weight.uniform_(0.5, 1.5)
    gamma0 = model.get_submodule(str(int(g) + 1)).weight.detach().clone()
    w0, b0 = conv.weight.detach().clone(), conv.bias.detach().clone()
    scale_filters_(model, groups, masks, 0.25)
    pruned, kept = ~masks[g], masks[g]
    torch.testing.assert_close(conv.weight.detach()[pruned], 0.25 * w0[pruned])
    torch.testing.assert_close(conv.bias.detach()[pruned], 0.25 * b0[pruned])
    assert torch.equal(conv.weight.detach()[kept], w0[kept])
    bn = model.get_submodule(str(int(g) + 1))  # the BN after the conv: its affine decays too
    torch.testing.assert_close(bn.weight.detach()[pruned], 0.25 * gamma0[pruned])
    assert torch.equal(bn.weight.detach()[kept], gamma0[kept])
    gamma1 = bn.weight.detach().clone()
    scale_filters_(model, groups, masks, 0.5, norms=False)  # filter-only form: norm layers untouched
    assert torch.equal(bn.weight.detach(), gamma1)


def test_decaying_the_filter_alone_is_undone_by_batch_norm():
    """Why the BN affine decays too: BN(alpha * conv(x)) == BN(conv(x)) with batch statistics."""
    model = _net().train()
    x = torch.randn(8, 1, 6, 6)
    groups = M.discover_groups(model, x)
    scores = M.criterion_scores(model, groups, "l2")
    masks = M.masks_from_scores(scores, M.prune_counts(scores, 0.5))
    with torch.no_grad():
        y0 = model(x)
        scale_filters_(model, groups, masks, 0.1, norms=False)
        filter_only = float((model(x) - y0).abs().max())  # only BN's eps sees the scale
        scale_filters_(model, groups, masks, 0.1, norms=True)
        with_norm = float((model(x) - y0).abs().max())
    assert filter_only < 0.01 and with_norm > 10 * filter_only


class PrunedNorm(Technique):
    """Records the norm of the first conv's filters that softer pruning currently selects."""

    name = "pruned_norm"
    order = 50  # after softer_pruning (40) at epoch_end

    def __init__(self, tech: SofterPruning) -> None:
        self.tech, self.norms = tech, []

    def epoch_end(self, state) -> None:
        name = self.tech._groups[0].name
        w = state.model.get_submodule(name).weight.detach()
        self.norms.append(float(w[~self.tech.masks[name]].norm()))


def test_pruned_filters_fade_gradually_then_are_removed() -> None:
    tech = SofterPruning(ratio=0.5)
    rec = PrunedNorm(tech)
    model = _net()
    tr = _fit(model, _Both(tech, rec), epochs=4)
    assert [a for _, a in tech.alphas] == [1.0, 0.75, 0.5, 0.25, 0.0]
    # unlike SFP (zero after every epoch) the selected filters still carry weight until the end
    assert all(n > 0 for n in rec.norms[:-1]) and rec.norms[-1] == 0.0
    assert tr.result.model[3].out_channels == 8
    assert tr.result.model(torch.randn(2, 1, 6, 6)).shape == (2, 3)
    assert tech.summary()["srfp_last_alpha"] == 0.0


def test_asrfp_grows_the_rate() -> None:
    tech = SofterPruning(ratio=0.5, asymptotic=True, decay="cosine")
    _fit(_net(), tech, epochs=4)
    rates = [r for _, r in tech.rates]
    assert rates[0] == pytest.approx(0.0, abs=1e-12) and rates[-1] == pytest.approx(0.5)
    assert all(b >= a for a, b in zip(rates, rates[1:]))


class _Both(Technique):
    """Runs two techniques through one slot of the test helper ``_fit``."""

    name = "both"

    def __init__(self, a, b) -> None:
        self.a, self.b = a, b

    def fit_start(self, state) -> None:
        self.a.fit_start(state)

    def epoch_end(self, state) -> None:
        self.a.epoch_end(state)
        self.b.epoch_end(state)

    def fit_end(self, state) -> None:
        self.a.fit_end(state)


def test_reachable_from_a_recipe():
    from leandl.errors import ConfigError
    from leandl.recipes.techniques import build_techniques, check_technique

    cls, kwargs = check_technique({"name": "softer_pruning", "ratio": 0.5, "decay": "cosine", "asymptotic": True}, "stages[0].techniques[0]")
    assert cls.name == "softer_pruning" and build_techniques([{"name": "softer_pruning", "ratio": 0.5, "decay": "cosine", "asymptotic": True}], "stages[0]")[0].name == "softer_pruning"
    with pytest.raises(ConfigError, match="unknown argument"):
        check_technique({"name": "softer_pruning", "no_such_option": 1}, "stages[0].techniques[0]")
