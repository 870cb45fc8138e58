"""Inline subnetwork collaboration (ISC): each exit also reads the previous exit's logits.

What: IMTA's link ``feat = ReLU(BN1d(Linear(z_{k-1} -> width)))``, ``z_k = W [h_k; feat] + b``,
implemented as exit k's own logits plus ``U feat`` with ``U`` initialised to zero (see
:class:`leandl.dynamic.heads.InlineLink`). Later exits reuse the earlier exits' evidence, so
they improve most where the backbone is shallow.

When: multi-exit training, typically in IMTA's second stage (backbone frozen, heads + links
trained with one-for-all KD).

Cost: per exit one ``C x width`` and one ``width x C`` linear layer (C = classes): negligible
MACs. It is a structural change: recorded as an ``inline_collaboration`` edit, so checkpoints
reload without pickle.

Hyper-parameters: ``width`` (IMTA: 128 on CIFAR), ``detach`` (stop the gradient into exit k-1;
the paper's text says so, IMTA's code does not; default False as in the code).

Interactions: added at ``fit_start`` before the optimizer is built, so the links train;
combine with ``gradient_equilibrium`` and ``one_for_all_kd``.

Paper: Li et al., "Improved Techniques for Training Adaptive Deep Networks", arXiv 1908.09294.
"""

from __future__ import annotations

from typing import Any

from leandl.dynamic.multi_exit import add_inline_links_
from leandl.dynamic._exits_only import ExitsOnly
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["InlineCollaboration"]


@TECHNIQUES.register("inline_collaboration")
class InlineCollaboration(ExitsOnly, Technique):
    """IMTA inline subnetwork collaboration: exit k also reads exit k-1's logits (arXiv 1908.09294).

    Args:
        width: hidden width of each link.
        detach: stop the gradient from exit k into exit k-1 along the link.
    """

    name = "inline_collaboration"
    order = -10

    def __init__(self, width: int = 128, detach: bool = False) -> None:
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.width, self.detach = int(width), bool(detach)

    def fit_start(self, state: State) -> None:
        """Add the links to the multi-exit model (before the optimizer is built)."""
        if not len(getattr(state.model, "links", ())):
            add_inline_links_(state.model, self.width, self.detach)

    def summary(self) -> dict[str, Any]:
        """The link width."""
        return {"inline_collaboration_width": self.width}
