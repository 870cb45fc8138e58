"""Label smoothing (Szegedy et al., "Rethinking the Inception Architecture", arXiv 1512.00567).

What: replace the one-hot target ``y`` by ``q = (1 - eps) * y + eps / K``.
When: at ``before_loss``; the trainer rebuilds one-hot targets every batch, so metrics always
see the true labels.
Cost: none. Hyper-parameters: ``smoothing`` in [0, 1], 0.1 is the usual value.
Interactions: combine with distillation with care (smoothed teachers distil worse).
"""

from __future__ import annotations

from torch import Tensor

from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["smooth_labels", "LabelSmoothing"]


def smooth_labels(targets_soft: Tensor, smoothing: float) -> Tensor:
    """Mix target distributions ``(B, K)`` with the uniform one: ``(1 - s) q + s / K``.

    Args:
        targets_soft: ``(B, K)`` rows summing to 1 (one-hot or already soft).
        smoothing: ``s`` in [0, 1]; 0 returns the input, 1 the uniform distribution.

    Example:
        >>> smooth_labels(torch.tensor([[0., 1.]]), 0.2)
        tensor([[0.1000, 0.9000]])
    """
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
    k = targets_soft.shape[-1]
    return targets_soft * (1.0 - smoothing) + smoothing / k


@TECHNIQUES.register("label_smoothing")
class LabelSmoothing(Technique):
    """Label smoothing of the training targets (arXiv 1512.00567)."""

    name = "label_smoothing"

    def __init__(self, smoothing: float = 0.1) -> None:
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
        self.smoothing = smoothing

    def before_loss(self, state: State) -> None:
        state.targets_soft = smooth_labels(state.targets_soft, self.smoothing)
