"""Gradient equilibrium (GE) for multi-exit networks: each block gets the mean of its exits' gradients.

What: with K exits, backbone block i (1-indexed) is trained by exits i..K, so the gradients it
receives are a *sum* of K - i + 1 conflicting terms and grow towards the input. GE rescales
them so the block receives their *average*: the gradient from exit i is multiplied by
``1 / (K - i + 1)`` and the gradient from the deeper path (exits i+1..K) by
``(K - i) / (K - i + 1)``. Unrolled through identity blocks, block i then gets
``(1 / (K - i + 1)) sum_{j >= i} g_j``.

How (IMTA's code): an identity autograd function ``GR(x, w)`` whose backward multiplies by w;
0-indexed, after segment k: ``x = GR(x, 1/(K-k)); z_k = exit_k(x); x = GR(x, K-k-1)``. Exit
heads' own parameter gradients are unchanged (GR is the identity in the forward pass).

When: multi-exit training from scratch (or fine-tuning the backbone with exits) with SGD. With a
frozen backbone it has nothing to do.

Adaptive optimisers are refused: unrolled, GE multiplies *every* gradient reaching segment k
(0-indexed) by the same scalar ``1 / (K - k)`` (the k-th segment receives
``(1/(K-k)) sum_{j>=k} g_j`` instead of the sum), i.e. it is a per-segment step-size change
under SGD. Adam/AdamW divide each parameter's step by its running gradient RMS, which removes
any constant gradient scale exactly (up to ``eps``): the optimiser already does what GE does
for the magnitude imbalance, and GE becomes a silent no-op. ``optimizer: adam|adamw`` with
this technique is therefore a :class:`ConfigError` naming the recipe field (at recipe
validation and again when training starts).

Cost: two identity ops per exit; no extra memory.

Hyper-parameters: none.

Interactions: the loss stays ``sum_k w_k CE_k`` (``exit_loss_weights`` may set w_k);
combines with ``inline_collaboration`` and ``one_for_all_kd`` (IMTA's full recipe).

Paper: Li, Zhang, Qi, Yang, Huang, "Improved Techniques for Training Adaptive Deep Networks",
ICCV 2019, arXiv 1908.09294 (code: kalviny/IMTA).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from leandl.dynamic._exits_only import ExitsOnly
from leandl.errors import ConfigError, ModelError
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["GradientRescale", "gradient_rescale", "equilibrium_factors", "GradientEquilibrium",
           "ADAPTIVE_OPTIMIZERS"]

# optimisers whose step is invariant to a constant rescale of a parameter's gradient
ADAPTIVE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.Adam, torch.optim.AdamW, torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam,
    torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adadelta)
_ADAPTIVE_NAMES = ("adam", "adamw")
_WHY = ("gradient_equilibrium rescales each backbone segment's gradient by a constant, which an "
        "adaptive optimiser normalises away (the technique would silently do nothing)")


class GradientRescale(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``weight``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: float) -> Tensor:  # noqa: D102
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return grad * ctx.weight, None


def gradient_rescale(x: Tensor, weight: float) -> Tensor:
    """``GR(x, w)``: returns ``x``; in the backward pass ``dL/dx <- w * dL/dx``.

    Example:
        >>> x = torch.ones(2, requires_grad=True)
        >>> gradient_rescale(x, 0.5).sum().backward(); x.grad
        tensor([0.5000, 0.5000])
    """
    return GradientRescale.apply(x, float(weight))


def equilibrium_factors(num_exits: int) -> list[tuple[float, float]]:
    """Per block i = 1..K: (factor on exit i's gradient, factor on the deeper path's gradient).

    ``(1 / (K - i + 1), (K - i) / (K - i + 1))``; the last block gets ``(1, 0)``.

    Example:
        >>> equilibrium_factors(3)
        [(0.3333333333333333, 0.6666666666666666), (0.5, 0.5), (1.0, 0.0)]
    """
    if num_exits < 1:
        raise ValueError(f"num_exits must be >= 1, got {num_exits}")
    k = num_exits
    return [(1.0 / (k - i + 1), (k - i) / (k - i + 1)) for i in range(1, k + 1)]


@TECHNIQUES.register("gradient_equilibrium")
class GradientEquilibrium(ExitsOnly, Technique):
    """IMTA gradient equilibrium: each block receives the mean of its exits' gradients (arXiv 1908.09294; SGD only)."""

    name = "gradient_equilibrium"

    def __init__(self) -> None:
        self._model: Any = None
        self._checked = False

    @classmethod
    def check_stage(cls, kind: str, options: Any, recipe: Any, where: str) -> None:
        """Only in an ``exits`` stage, and only with ``optimizer: sgd`` (stage or ``defaults``)."""
        super().check_stage(kind, options, recipe, where)
        own = getattr(options, "optimizer", None)
        opt = own or getattr(getattr(recipe, "defaults", None), "optimizer", None)
        if opt in _ADAPTIVE_NAMES:
            field = f"{where.rsplit('.techniques', 1)[0]}.optimizer" if own else "defaults.optimizer"
            raise ConfigError(f"{_WHY}; optimizer is '{opt}'", where=field,
                              fix="set `optimizer: sgd` in this exits stage, or drop gradient_equilibrium")

    def fit_start(self, state: State) -> None:
        """Switch the multi-exit model's gradient rescaling on."""
        model = state.model
        if not hasattr(model, "gradient_equilibrium"):
            raise ModelError("gradient_equilibrium needs a multi-exit model", where=type(model).__name__,
                             fix="attach exits first (leandl.dynamic.attach_exits or the 'exits' stage)")
        model.gradient_equilibrium = True
        self._model = model

    def epoch_start(self, state: State) -> None:
        """Refuse an adaptive optimiser (it exists only after ``fit_start``)."""
        if not self._checked and isinstance(state.optimizer, ADAPTIVE_OPTIMIZERS):
            self.fit_end(state)
            raise ConfigError(f"{_WHY}; optimizer is {type(state.optimizer).__name__}",
                              where="optimizer", fix="train with SGD, or drop gradient_equilibrium")
        self._checked = True

    def fit_end(self, state: State) -> None:
        """Switch it off again (inference and later stages see a plain model)."""
        if self._model is not None:
            self._model.gradient_equilibrium = False

    def summary(self) -> dict[str, Any]:
        """No numbers beyond the trainer's."""
        return {}
