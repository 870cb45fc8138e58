"""Soft Filter Pruning (SFP) and its asymptotic variant (ASFP).

What: before training and after every ``every`` epochs, zero in each channel group the
``floor(P_t * size)`` units with the lowest criterion score (L2 filter norm by default). The
zeroed units are *not* frozen: they keep receiving gradients during the next epoch and may
grow back and be kept at the next selection. After the last epoch the mask is applied once
more at the final rate ``P`` and the zeroed units are removed physically.

Rate: SFP keeps ``P_t = P`` from the start. ASFP raises it asymptotically,

    P'(t) = a e^{-k t} + b,   P'(0) = 0,  P'(t_max) = P,  P'(t_max / 4) = 3/4 P,

so ``b = -a``; with ``x = e^{-k t_max / 4}`` the conditions give ``1 + x + x^2 + x^3 = 4/3``
(x ~= 0.2527), ``k = -4 ln(x) / t_max`` and ``a = P / (x^4 - 1)``. ``t`` counts completed
epochs and ``t_max`` the planned epochs.

BN-beta leak: during training only the conv/linear filters are zeroed (as in SFP's code), so
the BN scale still passes a gradient and a zeroed filter can recover; a zeroed channel then
emits about relu(beta). At ``fit_end`` the BN weight and bias of the pruned channels are zeroed
too and the channels removed, so the final model's function changes once by that leak; the
trainer's final evaluation runs after ``fit_end`` and reports the honest accuracy.

When: training from scratch (or fine-tuning) to a fixed per-layer channel ratio with no
separate fine-tune stage. Cost: one criterion pass per epoch.
Hyper-parameters: ``ratio`` (P, fraction of units pruned per group; SFP's ``--rate 0.7`` keep
= ratio 0.3), ``criterion`` (``l2``), ``asymptotic`` (ASFP), ``every`` (epochs between
selections, 1). Interactions: run before SWA; do not combine with another pruning schedule.
Papers: He et al., "Soft Filter Pruning for Accelerating Deep Convolutional Neural Networks",
arXiv 1808.06866; He et al., "Asymptotic Soft Filter Pruning for Deep Convolutional Neural
Networks", IEEE T-Cybern. 2019 (preprint "Progressive Deep Neural Networks Acceleration via Soft
Filter Pruning", arXiv 1808.07471).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from torch import Tensor

from leandl.prune.schedules import _masks as M
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["asfp_constants", "soft_pruning_rate", "SoftPruning"]


def asfp_constants(final: float, t_max: float) -> tuple[float, float, float]:
    """``(a, k, b)`` of ASFP's rate ``P'(t) = a e^{-kt} + b`` (see the module docstring)."""
    if t_max <= 0:
        raise ValueError(f"t_max must be > 0, got {t_max}")
    lo, hi = 0.0, 1.0  # solve 1 + x + x^2 + x^3 = 4/3 on (0, 1) by bisection
    for _ in range(100):
        mid = (lo + hi) / 2
        if 1 + mid + mid**2 + mid**3 < 4.0 / 3.0:
            lo = mid
        else:
            hi = mid
    x = (lo + hi) / 2
    k = -4.0 * math.log(x) / t_max
    a = final / (x**4 - 1.0)
    return a, k, -a


def soft_pruning_rate(epoch: float, *, final: float, total_epochs: float, asymptotic: bool = False) -> float:
    """Pruning rate after ``epoch`` completed epochs: ``P`` (SFP) or ``a e^{-k t} + b`` (ASFP)."""
    if not asymptotic:
        return final
    a, k, b = asfp_constants(final, total_epochs)
    t = min(max(epoch, 0.0), total_epochs)
    return min(final, max(0.0, a * math.exp(-k * t) + b))


@TECHNIQUES.register("soft_pruning")
class SoftPruning(Technique):
    """SFP/ASFP: zero low-norm units each epoch, let them recover, remove at the end (arXiv 1808.06866)."""

    name = "soft_pruning"
    order = 40
    changes_model = True

    def __init__(self, ratio: float = 0.3, criterion: str = "l2", asymptotic: bool = False, every: int = 1,
                 scope: Literal["layerwise", "global"] = "layerwise", max_ratio: float = 0.9,
                 ignored_layers: list[str] | None = None, remove: bool = True) -> None:
        M.check_fraction("ratio", ratio)
        M.check_fraction("max_ratio", max_ratio)
        if every < 1:
            raise ValueError(f"every must be >= 1 epoch, got {every}")
        self.ratio, self.criterion, self.asymptotic, self.every = ratio, criterion, asymptotic, every
        self.scope, self.max_ratio, self.remove = scope, max_ratio, remove
        self.ignored = list(ignored_layers) if ignored_layers is not None else None
        self.masks: dict[str, Tensor] = {}
        self.rates: list[tuple[int, float]] = []
        self.recovered = 0
        self._groups: list[Any] = []
        self._example: Tensor | None = None
        self._epochs = 1

    def rate_at(self, epoch: float) -> float:
        """The rate used after ``epoch`` completed epochs of this fit."""
        return soft_pruning_rate(epoch, final=self.ratio, total_epochs=self._epochs, asymptotic=self.asymptotic)

    def fit_start(self, state: State) -> None:
        from leandl.prune.schedules._defaults import default_ignored

        self._epochs = state.max_epochs
        self._example = M.example_batch(state)
        ignored = self.ignored if self.ignored is not None else default_ignored(state.model)
        self._groups = M.discover_groups(state.model, self._example, ignored)
        self._select(state, 0)

    def _select(self, state: State, epoch: int) -> None:
        rate = self.rate_at(epoch)
        scores = M.criterion_scores(state.model, self._groups, self.criterion)
        new = M.masks_from_scores(scores, M.prune_counts(scores, rate, self.scope, self.max_ratio))
        if self.masks:
            self.recovered += sum(int((new[k] & ~self.masks[k]).sum()) for k in new if k in self.masks)
        self.masks = new
        self.rates.append((epoch, rate))
        self._soften(state, epoch)

    def _soften(self, state: State, epoch: int) -> None:
        """What happens to the selected filters until the end (SFP: zeroed, may regrow)."""
        M.zero_filters_(state.model, self._groups, self.masks)

    def epoch_end(self, state: State) -> None:
        done = state.epoch + 1
        if done % self.every == 0 or done >= self._epochs:
            self._select(state, done)

    def fit_end(self, state: State) -> None:
        if self.rates and self.rates[-1][1] != self.ratio:
            self._select(state, self._epochs)
        M.apply_group_masks_(state.model, self._groups, self.masks)
        if self.remove and self.masks:
            state.model = M.remove_masked(state.model, self._example, self.masks)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": dict(self.masks), "rates": list(self.rates), "recovered": self.recovered}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = dict(state["masks"])
        self.rates = [tuple(r) for r in state["rates"]]
        self.recovered = int(state["recovered"])

    def summary(self) -> dict[str, Any]:
        return {"sfp_final_rate": self.rates[-1][1] if self.rates else 0.0,
                "sfp_units_recovered": self.recovered, "sfp_selections": len(self.rates)}
