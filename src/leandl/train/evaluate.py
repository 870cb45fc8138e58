"""Evaluation: accuracy and loss of a model (or of every output of a multi-output model)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["evaluate", "predict_logits"]


@torch.no_grad()
def predict_logits(model: nn.Module, loader: Any, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Concatenated logits of every output over ``loader`` (one tensor per output)."""
    was_training = model.training
    model.eval()
    chunks: list[list[torch.Tensor]] = []
    try:
        for batch in loader:
            out = model(batch[0].to(device))
            outs = list(out) if isinstance(out, list | tuple) else [out]
            if not chunks:
                chunks = [[] for _ in outs]
            for i, o in enumerate(outs):
                chunks[i].append(o.float().cpu())
    finally:
        model.train(was_training)
    return [torch.cat(c) for c in chunks]


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Accuracy in [0, 1] and mean cross-entropy over ``loader``.

    For a model returning a list of logits, ``accuracy``/``loss`` describe the last output and
    ``output_accuracy`` lists every output's accuracy.
    """
    was_training = model.training
    model.eval()
    n = 0
    correct: list[int] = []
    loss_sum = 0.0
    try:
        for batch in loader:
            x, y = batch[0].to(device), batch[1].to(device)
            out = model(x)
            outs = list(out) if isinstance(out, list | tuple) else [out]
            if not correct:
                correct = [0] * len(outs)
            for i, o in enumerate(outs):
                correct[i] += int((o.argmax(dim=-1) == y).sum())
            loss_sum += float(F.cross_entropy(outs[-1].float(), y, reduction="sum"))
            n += y.numel()
    finally:
        model.train(was_training)
    if n == 0:
        return {"accuracy": float("nan"), "loss": float("nan"), "n": 0}
    result: dict[str, Any] = {"accuracy": correct[-1] / n, "loss": loss_sum / n, "n": n}
    if len(correct) > 1:
        result["output_accuracy"] = [c / n for c in correct]
    return result
