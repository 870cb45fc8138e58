"""Stochastic mini-batch dropping (SMD) from E2-Train (Wang et al., NeurIPS 2019, arXiv 1910.13349).

What: at every iteration skip the mini-batch with probability ``rate``: no forward, no backward
and no optimizer step. The number of iterations (and so the learning-rate schedule, which runs on
the step counter) stays fixed, so about ``(1 - rate)`` of the batches are trained on. E2-Train
uses ``rate = 0.5`` and reports that SMD alone costs little accuracy on CIFAR (it acts as extra
data-level regularisation while the schedule keeps its length).
When: ``batch_start`` sets ``state.skip_batch``; the trainer then jumps straight to
``batch_end``.
Cost saved: per skipped batch ``3 * F * B`` MACs, where ``F`` is the forward MACs of one sample
(counted once at ``fit_start`` with :func:`leandl.measure.count_macs`) and ``B`` the batch size
(forward ``F``, backward ``2F``: input and weight gradients). Wall clock saved is estimated as
skipped batches times the mean wall time of a trained step so far. Counters ``macs_saved``,
``batches_skipped`` and ``seconds_saved_est`` go to ``metrics.jsonl`` every epoch; the summary
adds ``smd_fraction_skipped`` and ``smd_seconds_saved_est`` (using the final mean step time).
Hyper-parameters: ``rate`` in [0, 1) (0.5 in the paper); ``seed`` of the skip decisions (its
own generator, so model/data randomness is unchanged and resume is exact).
Interactions: the official code still calls ``zero_grad(); step()`` on a skipped iteration, so
momentum and weight decay keep moving the weights; leandl does not (a skipped batch costs
nothing). Techniques that count samples (EMA, SWA by epoch) see fewer updates.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["drop_minibatch", "forward_macs_per_sample", "MinibatchDropping"]


def drop_minibatch(rate: float, generator: torch.Generator | None = None) -> bool:
    """Bernoulli decision: True (skip this batch) with probability ``rate``.

    Args:
        rate: skip probability in [0, 1].
        generator: CPU generator for reproducible draws (global RNG when None).

    Example:
        >>> drop_minibatch(0.0), drop_minibatch(1.0)
        (False, True)
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    return bool(torch.rand((), generator=generator).item() < rate)


def forward_macs_per_sample(model: nn.Module, example: torch.Tensor) -> int:
    """Forward MACs of one sample: ``count_macs`` on the first element of ``example`` (N, ...)."""
    from leandl.measure import count_macs

    return int(count_macs(model, example[:1]).total)


def first_batch_inputs(loader: Any, device: torch.device) -> torch.Tensor:
    """Inputs of the first batch of ``loader`` (used to count MACs at ``fit_start``)."""
    batch = next(iter(loader))
    return batch[0].to(device)


@TECHNIQUES.register("minibatch_dropping")
class MinibatchDropping(Technique):
    """Skip each mini-batch with probability ``rate`` (E2-Train SMD, arXiv 1910.13349)."""

    name = "minibatch_dropping"
    order = -100  # decide before any other technique spends work on the batch

    def __init__(self, rate: float = 0.5, seed: int = 0) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1) (1 would never train), got {rate}")
        self.rate = rate
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.forward_macs = 0
        self.batches_seen = 0
        self.batches_skipped = 0
        self.trained_seconds = 0.0
        self._t0: float | None = None

    def fit_start(self, state: State) -> None:
        self.forward_macs = forward_macs_per_sample(state.model, first_batch_inputs(state.train_loader, state.device))

    def batch_start(self, state: State) -> None:
        self.batches_seen += 1
        if drop_minibatch(self.rate, self.generator):
            state.skip_batch = True
            self.batches_skipped += 1
            batch = int(state.inputs.shape[0]) if state.inputs is not None else 0
            state.count("macs_saved", 3 * self.forward_macs * batch)
            state.count("batches_skipped", 1)
            trained = self.batches_seen - self.batches_skipped
            if trained:
                state.count("seconds_saved_est", self.trained_seconds / trained)
            self._t0 = None
        else:
            self._t0 = time.perf_counter()

    def batch_end(self, state: State) -> None:
        if self._t0 is not None:
            self.trained_seconds += time.perf_counter() - self._t0
            self._t0 = None

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "batches_seen": self.batches_seen,
                "batches_skipped": self.batches_skipped, "trained_seconds": self.trained_seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.batches_seen = int(state["batches_seen"])
        self.batches_skipped = int(state["batches_skipped"])
        self.trained_seconds = float(state["trained_seconds"])

    def summary(self) -> dict[str, Any]:
        trained = self.batches_seen - self.batches_skipped
        per_step = self.trained_seconds / trained if trained else 0.0
        return {
            "smd_forward_macs_per_sample": self.forward_macs,
            "smd_batches_skipped": self.batches_skipped,
            "smd_fraction_skipped": self.batches_skipped / self.batches_seen if self.batches_seen else 0.0,
            "smd_seconds_saved_est": per_step * self.batches_skipped,
        }
