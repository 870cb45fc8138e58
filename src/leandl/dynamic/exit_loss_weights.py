"""Weighted sum of exit losses: ``L = sum_k w_k CE(z_k, y)`` for multi-exit networks.

What: sets the per-exit loss weights the trainer applies to a list of outputs
(``state.output_weights``). ``constant`` uses the given weights (default all 1, as in
MSDNet/IMTA); ``sdn`` ramps internal classifiers as in Shallow-Deep Networks:
``w_k = min(C_k, 0.01 + progress * C_k)`` with ``C_k`` the exit's relative depth, final exit 1.

When: any multi-exit training; ``sdn`` when exits are trained jointly from scratch and early
heads should not dominate the first epochs.

Cost: none.

Hyper-parameters: ``weights`` (K non-negative numbers) or ``schedule: sdn`` with ``depths``
(K - 1 values in (0, 1]; default evenly spaced).

Interactions: ``one_for_all_kd`` multiplies these weights by ``1 - gamma`` on early exits;
``gradient_equilibrium`` rescales gradients inside the backbone, not the losses.

Papers: Teerapittayanon et al., BranchyNet, arXiv 1709.01686; Kaya et al., Shallow-Deep
Networks, arXiv 1810.07052.
"""

from __future__ import annotations

from typing import Any, Literal

from leandl.dynamic._exits_only import ExitsOnly
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["sdn_weights", "ExitLossWeights"]


def sdn_weights(progress: float, depths: list[float]) -> list[float]:
    """SDN weights ``min(C_k, 0.01 + progress * C_k)`` for internal exits, then 1 for the last.

    Example:
        >>> sdn_weights(0.5, [0.25, 0.5])
        [0.135, 0.26, 1.0]
    """
    return [min(c, 0.01 + progress * c) for c in depths] + [1.0]


@TECHNIQUES.register("exit_loss_weights")
class ExitLossWeights(ExitsOnly, Technique):
    """Per-exit loss weights for multi-exit training (constant or the SDN ramp, arXiv 1810.07052).

    Args:
        weights: K weights (constant schedule); default all ones.
        schedule: ``"constant"`` or ``"sdn"``.
        depths: relative depths of the K - 1 early exits for ``sdn`` (default k / K).
    """

    name = "exit_loss_weights"
    order = -1

    def __init__(self, weights: list[float] | None = None,
                 schedule: Literal["constant", "sdn"] = "constant",
                 depths: list[float] | None = None) -> None:
        if weights is not None and (not weights or min(weights) < 0):
            raise ValueError(f"weights must be a non-empty list of numbers >= 0, got {weights}")
        if depths is not None and (not depths or min(depths) <= 0 or max(depths) > 1):
            raise ValueError(f"depths must lie in (0, 1], got {depths}")
        if schedule not in ("constant", "sdn"):
            raise ValueError(f"schedule must be 'constant' or 'sdn', got {schedule!r}")
        self.weights, self.schedule, self.depths = weights, schedule, depths

    def before_loss(self, state: State) -> None:
        """Set ``state.output_weights`` for this step."""
        outs = state.outputs
        if not isinstance(outs, list | tuple):
            return
        k = len(outs)
        if self.schedule == "sdn":
            depths = self.depths or [(i + 1) / k for i in range(k - 1)]
            if len(depths) != k - 1:
                raise ValueError(f"exit_loss_weights: {k} exits need {k - 1} depths, got {len(depths)}")
            state.output_weights = sdn_weights(state.progress, list(depths))
            return
        w = self.weights or [1.0] * k
        if len(w) != k:
            raise ValueError(f"exit_loss_weights: the model has {k} exits but {len(w)} weights were given")
        state.output_weights = [float(v) for v in w]

    def summary(self) -> dict[str, Any]:
        """The weights in use (constant schedule)."""
        return {"exit_loss_weights": self.weights} if self.weights else {}
