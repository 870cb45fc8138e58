"""SofteR Filter Pruning (SRFP) and its asymptotic variant (ASRFP).

What: SFP (:mod:`leandl.prune.schedules.soft`) zeroes the selected low-norm filters after every
epoch. SRFP instead *decays* them: after epoch ``t`` of ``T`` the filters selected for pruning are
multiplied by a factor ``alpha_t`` that falls monotonically from 1 to 0,

    W[pruned] <- alpha_t * W[pruned],   alpha_t = 1 - t / T            (``decay: linear``)
                                        alpha_t = (1 + cos(pi t / T)) / 2 (``decay: cosine``)

so what a pruned filter learned fades out gradually instead of vanishing at once; the
selected filters keep receiving gradients and may be re-selected as kept (as in SFP). At
``t = T`` the factor is 0, the pruned filters are exactly zero, BN scale and shift of those
channels are zeroed too and the channels are removed physically (SFP's export). The paper
shows the decay acts like an L2 penalty on the pruned filters whose strength grows over
training (incremental regularisation): multiplying by ``alpha`` equals one gradient step of
``lambda/2 ||W||^2`` with ``lr * lambda = 1 - alpha``. ASRFP (``asymptotic: true``) uses ASFP's
growing pruning rate ``P'(t) = a e^{-kt} + b`` (see :func:`~leandl.prune.schedules.soft.asfp_constants`).

Batch norm: a BN layer after the conv normalises a per-channel scale of the filter away
(``BN(alpha W x) = BN(W x)`` with batch statistics), so decaying only the conv filter changes
nothing while training and the whole function change lands at the final cut; measured on
MNIST-1D that made SRFP 57 points worse than SFP. The decay therefore also scales the BN
weight and bias of the pruned channels (``gamma, beta <- alpha gamma, alpha beta``), which scales
the channel's output by ``alpha`` and fades it out as intended (``decay_norm: false`` restores
the filter-only form). The decay schedule is an implementation choice of this library (the paper
fixes only "a monotonically decreasing factor"); ``linear`` is the default.

When: training from scratch (or fine-tuning) to a fixed per-layer channel ratio, as SFP.
Cost: one criterion pass per epoch; convergence is slower than SFP's (the paper's caveat).
Hyper-parameters: ``ratio`` (fraction of units pruned per group), ``decay`` (``linear`` or
``cosine``), ``decay_norm`` (also decay the BN affine, True), ``asymptotic`` (ASRFP), ``criterion`` (``l2``), ``every`` (epochs between
selections). Interactions: as SFP; do not combine with another pruning schedule.
Paper: Cai, An, Yang, Xu, "Softer Pruning, Incremental Regularization", ICPR 2020, arXiv 2010.09498.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from leandl.prune.schedules import _masks as M
from leandl.prune.schedules.soft import SoftPruning
from leandl.registry import TECHNIQUES
from leandl.train.state import State

__all__ = ["decay_factor", "scale_filters_", "SofterPruning"]

DECAYS = ("linear", "cosine")


def decay_factor(epoch: float, total_epochs: float, decay: str = "linear") -> float:
    """``alpha_t`` after ``epoch`` of ``total_epochs`` completed epochs: 1 at t = 0, 0 at t = T."""
    if total_epochs <= 0:
        raise ValueError(f"total_epochs must be > 0, got {total_epochs}")
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
    t = min(max(epoch / total_epochs, 0.0), 1.0)
    return 1.0 - t if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def scale_filters_(model: nn.Module, groups: Sequence[Any], masks: dict[str, Tensor], alpha: float,
                   norms: bool = True) -> None:
    """Multiply the conv/linear weights and biases producing each group's pruned units by ``alpha``.

    With ``norms`` the weight and bias of the norm layers on those units are scaled too (their
    running statistics are not); without, norm layers are left alone as in
    :func:`~leandl.prune.schedules._masks.zero_filters_`.
    """
    for t, dim, idx in M.masked_producers(model, groups, masks, norms=norms):
        t.index_copy_(dim, idx, t.index_select(dim, idx) * alpha)


@TECHNIQUES.register("softer_pruning")
class SofterPruning(SoftPruning):
    """SRFP/ASRFP: decay low-norm filters by a shrinking factor each epoch, remove at the end (arXiv 2010.09498)."""

    name = "softer_pruning"

    def __init__(self, ratio: float = 0.3, decay: Literal["linear", "cosine"] = "linear", criterion: str = "l2",
                 asymptotic: bool = False, every: int = 1, scope: Literal["layerwise", "global"] = "layerwise",
                 max_ratio: float = 0.9, ignored_layers: list[str] | None = None, remove: bool = True,
                 decay_norm: bool = True) -> None:
        if decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
        super().__init__(ratio=ratio, criterion=criterion, asymptotic=asymptotic, every=every, scope=scope,
                         max_ratio=max_ratio, ignored_layers=ignored_layers, remove=remove)
        self.decay, self.decay_norm = decay, decay_norm
        self.alphas: list[tuple[int, float]] = []

    def _soften(self, state: State, epoch: int) -> None:
        alpha = decay_factor(epoch, self._epochs, self.decay)
        self.alphas.append((epoch, alpha))
        scale_filters_(state.model, self._groups, self.masks, alpha, norms=self.decay_norm)

    def fit_end(self, state: State) -> None:
        if not self.alphas or self.alphas[-1][0] != self._epochs:  # the last selection must use alpha = 0
            self._select(state, self._epochs)
        super().fit_end(state)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "alphas": list(self.alphas)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.alphas = [tuple(a) for a in state.get("alphas", [])]

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "srfp_last_alpha": self.alphas[-1][1] if self.alphas else 1.0}
