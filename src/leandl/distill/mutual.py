"""Deep mutual learning (Zhang, Xiang, Hospedales, Lu, CVPR 2018, arXiv 1706.00384).

What: a cohort of K peers trained together from scratch, each learning from the labels and
from the others: ``L_k = CE(y, p_k) + 1/(K-1) sum_{l != k} T^2 KL(p_l^T || p_k^T)`` with the
peers' ``p_l`` treated as constants in ``L_k`` (T = 1 in the paper).
Mechanics in leandl: wrap the peers in :class:`Cohort`, whose forward returns the list of peer
logits; the trainer's default loss is then ``sum_k CE_k`` (``output_weights`` all 1) and this
technique adds ``sum_k KL-term_k``; accuracy during training reads the last peer. The peers are
updated jointly from one summed loss (the paper alternates updates; with detached targets the
gradient of each peer's parameters is identical, only the order of steps differs).
When: no pre-trained teacher exists; each peer ends better than the same net trained alone.
Cost: K forwards and backwards per step. Hyper-parameters: ``temperature`` (1), ``weight``
(1). Deploy any single peer: ``cohort.peers[k]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from leandl.distill._common import as_list, tempered_kl
from leandl.errors import ModelError
from leandl.registry import LOSSES, TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["mutual_loss", "Cohort", "build_cohort", "MutualLearning"]


@LOSSES.register("mutual")
def mutual_loss(logits: Sequence[Tensor], temperature: float = 1.0) -> list[Tensor]:
    """DML's distillation term of every peer: ``1/(K-1) sum_{l != k} T^2 KL(p_l^T || p_k^T)``.

    Args:
        logits: K >= 2 tensors ``(B, C)``.
        temperature: T > 0.

    Returns:
        K scalars (batch means); peer k's term has gradients only towards peer k.
    """
    k = len(logits)
    if k < 2:
        raise ValueError(f"mutual learning needs at least two peers, got {k}")
    detached = [z.detach() for z in logits]
    return [sum(tempered_kl(logits[i], detached[j], temperature).mean() for j in range(k) if j != i) / (k - 1)
            for i in range(k)]


class Cohort(nn.Module):
    """K peer networks run on the same input; ``forward`` returns the list of their logits.

    Args:
        peers: the peer modules (same or different architectures, same number of classes).
    """

    def __init__(self, peers: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(peers) < 2:
            raise ModelError(f"a cohort needs at least two peers, got {len(peers)}", where="Cohort")
        self.peers = nn.ModuleList(peers)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[peer_1(x), ..., peer_K(x)]``."""
        return [peer(x) for peer in self.peers]


def build_cohort(*, model: str, k: int = 2, num_classes: int = 10, input_shape: Sequence[int] = (1, 8, 8),
                 model_kwargs: dict[str, Any] | None = None) -> Cohort:
    """K peers of registry model ``model``, each seeded differently (a checkpointable factory).

    Use ``leandl.create_model("leandl.distill.mutual:build_cohort", model=..., k=...)`` so the
    cohort carries a build spec; loading its checkpoint needs ``trust=True`` (import path).
    """
    from leandl.models import create_model

    if k < 2:
        raise ModelError(f"a cohort needs k >= 2 peers, got {k}", where="build_cohort.k")
    peers = []
    for _ in range(k):
        peers.append(create_model(model, num_classes=num_classes, input_shape=list(input_shape),
                                  **(model_kwargs or {})))
    return Cohort(peers)


@TECHNIQUES.register("mutual")
class MutualLearning(Technique):
    """Deep mutual learning over a cohort of peers (arXiv 1706.00384)."""

    name = "mutual"

    def __init__(self, temperature: float = 1.0, weight: float = 1.0) -> None:
        if temperature <= 0 or weight < 0:
            raise ValueError("need temperature > 0 and weight >= 0")
        self.temperature, self.weight = float(temperature), float(weight)

    def after_loss(self, state: State) -> None:
        terms = mutual_loss(as_list(state.outputs, self.name), self.temperature)
        state.add_loss_term("mutual", self.weight * torch.stack(terms).sum())
