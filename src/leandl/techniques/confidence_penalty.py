"""Confidence penalty (Pereyra, Tucker, Chorowski, Kaiser, Hinton; ICLR-W 2017, arXiv 1701.06548).

What: penalise confident (low-entropy) output distributions by subtracting the entropy of the
prediction from the loss, ``L = CE(q, p) - beta * H(p)`` with ``H(p) = -sum_k p_k log p_k``.
The hinge variant only penalises entropies below a threshold ``tau``:
``L = CE + beta * max(0, tau - H(p))`` (same gradient as the plain form while ``H < tau``, none
above it). In ProSelfLC's reading it is a target ``(1 - eps) q - eps p`` with
``beta <-> eps / (1 - eps)``; unlike label smoothing the penalty adapts to the prediction.
Gradient of the term w.r.t. the logits: ``dH/dz_j = -p_j (log p_j + H)``.
When: a loss term added at ``after_loss`` (``state.add_loss_term("confidence_penalty", ...)``,
shown as ``loss_confidence_penalty`` in the step log), averaged over the batch (weighted by
``state.sample_weights`` when set). For a list of outputs it applies to every output with the
output weights. Cost: one softmax per batch.
Hyper-parameters: ``beta`` (paper: grid over roughly 0.1 to 4; default 0.1), ``threshold``
(hinge ``tau`` in nats, None = plain form). Interactions: stacks with target revising (label
smoothing, bootstrapping) since it does not touch ``targets_soft``; do not combine with a robust
loss that assumes the plain CE value scale.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["entropy", "confidence_penalty", "ConfidencePenalty"]


def entropy(logits: Tensor) -> Tensor:
    """Per-sample entropy ``H(softmax(z)) = -sum_k p_k log p_k`` in nats, shape ``(B,)``."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


@LOSSES.register("confidence_penalty")
def confidence_penalty(logits: Tensor, beta: float = 0.1, threshold: float | None = None) -> Tensor:
    """Per-sample confidence-penalty term to add to the loss.

    Args:
        logits: ``(B, K)``.
        beta: penalty strength ``beta >= 0``.
        threshold: hinge ``tau``; None gives the plain ``-beta H(p)``.

    Returns:
        ``(B,)``: ``-beta * H(p)``, or ``beta * max(0, tau - H(p))`` with a threshold.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    h = entropy(logits)
    if threshold is None:
        return -beta * h
    return beta * (threshold - h).clamp_min(0.0)


@TECHNIQUES.register("confidence_penalty")
class ConfidencePenalty(Technique):
    """Subtract ``beta * H(p)`` from the loss (arXiv 1701.06548)."""

    name = "confidence_penalty"

    def __init__(self, beta: float = 0.1, threshold: float | None = None) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if threshold is not None and threshold < 0:
            raise ValueError(f"threshold must be >= 0 nats, got {threshold}")
        self.beta, self.threshold = float(beta), threshold

    def after_loss(self, state: State) -> None:
        outs = state.outputs if isinstance(state.outputs, list | tuple) else [state.outputs]
        weights = state.output_weights or [1.0] * len(outs)
        total = None
        for w, o in zip(weights, outs, strict=True):
            per = confidence_penalty(o, self.beta, self.threshold)
            if state.sample_weights is not None:
                per = per * state.sample_weights
            term = w * per.mean()
            total = term if total is None else total + term
        state.add_loss_term("confidence_penalty", total)
