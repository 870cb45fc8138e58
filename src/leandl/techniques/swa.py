"""Stochastic Weight Averaging (Izmailov et al., UAI 2018, arXiv 1803.05407).

What: from ``start`` (a fraction of the epochs) average the weights at the end of every epoch,
``w_swa <- (n * w_swa + w) / (n + 1)``; at the end swap the average in and recompute the
BatchNorm statistics with one pass over the training data (cumulative averaging).
LR: optionally hold a constant ``swa_lr`` during the averaging phase (the paper's schedule);
``None`` keeps the trainer's schedule.
Cost: one extra copy of the weights and one forward pass over the training data at the end.
Interactions: average the float weights before quantization calibration; after pruning, the
average keeps the pruned structure (masks re-applied by the pruning technique win).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["swa_average_", "update_bn", "SWA"]


@torch.no_grad()
def swa_average_(average: dict[str, Tensor], model: nn.Module, n_averaged: int) -> int:
    """Fold the model's float parameters into ``average`` in place; return the new count.

    ``average[k] <- (n * average[k] + w[k]) / (n + 1)``; an empty ``average`` is filled with a
    copy of the weights (n becomes 1).
    """
    for name, p in model.named_parameters():
        if name not in average:
            average[name] = p.detach().clone()
        else:
            average[name].mul_(n_averaged / (n_averaged + 1)).add_(p.detach(), alpha=1.0 / (n_averaged + 1))
    return n_averaged + 1


@torch.no_grad()
def update_bn(model: nn.Module, loader: Any, device: torch.device | str = "cpu") -> int:
    """Recompute BatchNorm running statistics with one pass in train mode; return #BN layers.

    Running mean/var are reset and accumulated with cumulative averaging (``momentum=None``),
    so the result is the plain average over the pass, as in ``torch.optim.swa_utils.update_bn``.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    momenta = {}
    for bn in bns:
        bn.reset_running_stats()
        momenta[bn] = bn.momentum
        bn.momentum = None
    was_training = model.training
    model.train()
    for batch in loader:
        model(batch[0].to(device))
    for bn in bns:
        bn.momentum = momenta[bn]
    model.train(was_training)
    return len(bns)


@TECHNIQUES.register("swa")
class SWA(Technique):
    """Stochastic weight averaging with a final BN update (arXiv 1803.05407)."""

    name = "swa"
    order = 50  # after techniques that edit weights at epoch_end (masks)

    def __init__(self, start: float = 0.75, swa_lr: float | None = None) -> None:
        if not 0.0 <= start < 1.0:
            raise ValueError(f"start must be a fraction of training in [0, 1), got {start}")
        if swa_lr is not None and swa_lr <= 0:
            raise ValueError("swa_lr must be > 0")
        self.start = start
        self.swa_lr = swa_lr
        self.average: dict[str, Tensor] = {}
        self.n_averaged = 0
        self.bn_layers_updated = 0

    def _active(self, state: State) -> bool:
        return state.epoch >= int(self.start * state.max_epochs)

    def batch_start(self, state: State) -> None:
        if self.swa_lr is not None and self._active(state):
            for group in state.optimizer.param_groups:
                group["lr"] = self.swa_lr
            state.lr = self.swa_lr

    def epoch_end(self, state: State) -> None:
        if self._active(state):
            self.n_averaged = swa_average_(self.average, state.model, self.n_averaged)

    def fit_end(self, state: State) -> None:
        if self.n_averaged == 0:
            return
        with torch.no_grad():
            for name, p in state.model.named_parameters():
                p.copy_(self.average[name])
        self.bn_layers_updated = update_bn(state.model, state.train_loader, state.device)

    def state_dict(self) -> dict[str, Any]:
        return {"average": dict(self.average), "n_averaged": self.n_averaged}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average = dict(state["average"])
        self.n_averaged = int(state["n_averaged"])

    def summary(self) -> dict[str, Any]:
        return {"swa_epochs_averaged": self.n_averaged, "swa_bn_layers_updated": self.bn_layers_updated}
