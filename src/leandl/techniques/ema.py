"""Exponential moving average (EMA) of the weights (Polyak averaging; as in Mean Teacher,
Tarvainen & Valpola, arXiv 1703.01780, and timm's ``ModelEmaV2``).

What: after every optimizer step ``w_ema <- d * w_ema + (1 - d) * w`` for every float parameter
and float buffer (BatchNorm running statistics are averaged too; integer buffers such as
``num_batches_tracked`` are copied). With ``warmup`` the decay ramps up as
``d_n = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early averages are not dominated
by the random initialisation. At ``fit_end`` the averaged weights are swapped into the model;
the raw model's validation accuracy is measured first and reported as ``ema_raw_val_accuracy``
so the summary shows what the average bought.
When: ``after_step`` (skipped batches do not update the average); ``fit_end`` swaps.
Cost: one extra copy of the weights; one fused ``lerp`` per tensor per step (``every`` > 1
updates less often, with the decay raised to ``decay**every`` to keep the same time constant).
Hyper-parameters: ``decay`` in [0, 1) (0.999 for long runs; 0.99 for a few hundred steps),
``start`` (fraction of training before which the EMA just tracks the weights), ``every``,
``warmup``.
Interactions: combine with SWA by using one or the other (both swap weights at ``fit_end``);
with pruning, re-apply masks after the swap (a masked weight's EMA decays to zero only slowly).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["ema_update_", "ema_decay", "EMA"]


def ema_decay(decay: float, n_updates: int, warmup: bool = True) -> float:
    """Effective decay after ``n_updates``: ``min(decay, (1 + n) / (10 + n))`` with warm-up.

    Example:
        >>> ema_decay(0.999, 0), ema_decay(0.5, 100)
        (0.1, 0.5)
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    return min(decay, (1.0 + n_updates) / (10.0 + n_updates)) if warmup else decay


@torch.no_grad()
def ema_update_(average: dict[str, Tensor], model: nn.Module, decay: float) -> dict[str, Tensor]:
    """Fold the model's state into ``average`` in place and return it.

    Float tensors: ``avg <- decay * avg + (1 - decay) * w``; other tensors are copied. An
    empty ``average`` is filled with a copy of the model's state (``state_dict`` keys).
    """
    for name, value in model.state_dict().items():
        if name not in average:
            average[name] = value.detach().clone()
        elif value.is_floating_point():
            average[name].lerp_(value.detach(), 1.0 - decay)
        else:
            average[name].copy_(value)
    return average


@TECHNIQUES.register("ema")
class EMA(Technique):
    """Exponential moving average of weights, swapped in at the end (Polyak, arXiv 1703.01780)."""

    name = "ema"
    order = 60  # after masks are re-applied at after_step

    def __init__(self, decay: float = 0.999, start: float = 0.0, every: int = 1, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if not 0.0 <= start < 1.0:
            raise ValueError(f"start must be a fraction of training in [0, 1), got {start}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.decay, self.start, self.every, self.warmup = decay, start, every, warmup
        self.average: dict[str, Tensor] = {}
        self.n_updates = 0
        self.raw_metrics: dict[str, Any] = {}

    def after_step(self, state: State) -> None:
        if (state.step + 1) % self.every:
            return
        if state.progress < self.start:
            self.average = {}  # track the weights until averaging starts
            return
        d = ema_decay(self.decay, self.n_updates, self.warmup) ** self.every
        ema_update_(self.average, state.model, d if self.average else 0.0)
        self.n_updates += 1

    def fit_end(self, state: State) -> None:
        if not self.average:
            return
        if state.eval_fn is not None:
            self.raw_metrics = state.eval_fn(state.model)
        state.model.load_state_dict(self.average)

    def state_dict(self) -> dict[str, Any]:
        return {"average": dict(self.average), "n_updates": self.n_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average = dict(state["average"])
        self.n_updates = int(state["n_updates"])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ema_updates": self.n_updates}
        if "accuracy" in self.raw_metrics:
            out["ema_raw_val_accuracy"] = self.raw_metrics["accuracy"]
        return out
