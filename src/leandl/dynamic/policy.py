"""Exit policies: leave at the first exit whose confidence reaches its threshold.

Confidence of logits ``z`` (B, C): ``max_prob`` = ``max_c softmax(z)_c`` (MSDNet, SDN) or
``entropy`` = ``-H(softmax(z)) = sum_c p_c log p_c`` (BranchyNet exits when H <= T, i.e. when
this confidence >= -T). Thresholds ``T_1..T_{K-1}`` live in confidence space; the last exit
takes every remaining sample. :func:`simulate` applies thresholds to stored exit outputs and
returns accuracy, exit fractions and expected MACs, without running the model again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from leandl.dynamic.costs import expected_macs, exit_fractions

__all__ = ["CRITERIA_NAMES", "confidence", "confidences", "ExitPolicy", "assign_exits", "simulate"]

CRITERIA_NAMES = ("max_prob", "entropy")


def confidence(logits: Tensor, criterion: str = "max_prob") -> Tensor:
    """Per-sample confidence ``(B,)``; larger means surer.

    Example:
        >>> confidence(torch.zeros(1, 4))
        tensor([0.2500])
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    if criterion == "max_prob":
        return logp.max(dim=-1).values.exp()
    if criterion == "entropy":
        return (logp.exp() * logp).sum(dim=-1)
    raise ValueError(f"unknown exit criterion {criterion!r}; use one of {', '.join(CRITERIA_NAMES)}")


def confidences(logits: Sequence[Tensor], criterion: str = "max_prob") -> Tensor:
    """Stack the confidences of K exits: ``(K, N)``."""
    return torch.stack([confidence(z, criterion) for z in logits])


@dataclass
class ExitPolicy:
    """Thresholds for exits 1..K-1 (confidence space) and the criterion they use."""

    thresholds: list[float]
    criterion: str = "max_prob"
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (infinite thresholds as strings)."""
        ts = [t if abs(t) != float("inf") else str(t) for t in self.thresholds]
        return {"thresholds": ts, "criterion": self.criterion, **self.info}


def assign_exits(conf: Tensor, thresholds: Sequence[float]) -> Tensor:
    """Exit index ``(N,)``: the first k with ``conf[k] >= T_k``, else K - 1."""
    k_total, n = conf.shape
    if len(thresholds) != k_total - 1:
        raise ValueError(f"{k_total} exits need {k_total - 1} thresholds, got {len(thresholds)}")
    exit_index = torch.full((n,), k_total - 1, dtype=torch.long)
    undecided = torch.ones(n, dtype=torch.bool)
    for k, t in enumerate(thresholds):
        take = undecided & (conf[k] >= t)
        exit_index[take] = k
        undecided &= ~take
    return exit_index


def simulate(conf: Tensor, correct: Tensor, thresholds: Sequence[float],
             costs: Sequence[int]) -> dict[str, Any]:
    """Accuracy, exit fractions and expected MACs of a policy on stored outputs.

    Args:
        conf: ``(K, N)`` confidences.
        correct: ``(K, N)`` bool, exit k right on sample n.
        thresholds: K - 1 thresholds.
        costs: cumulative MACs per exit.
    """
    idx = assign_exits(conf, thresholds)
    acc = correct.gather(0, idx.unsqueeze(0)).float().mean().item()
    fr = exit_fractions(idx, conf.shape[0])
    return {"accuracy": acc, "exit_fractions": fr, "expected_macs": expected_macs(fr, costs)}
