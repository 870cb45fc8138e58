"""``State``: everything a technique may read or change during training."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["State", "Outputs"]

Outputs = Tensor | list[Tensor]


@dataclass
class State:
    """Mutable training state shared by the trainer and its techniques.

    Batch fields (``inputs``, ``targets``, ``indices``, ``outputs``, ``targets_soft``, ``loss``)
    are set per step. ``targets_soft`` starts as the one-hot of ``targets``; the default loss is
    cross-entropy against it, so target revising is one assignment. ``sample_weights`` (shape
    ``(B,)``) multiplies the per-sample loss before the mean. ``loss_fn`` maps
    ``(logits (B, K), targets_soft (B, K))`` to a per-sample loss ``(B,)`` and may be replaced.
    For a list of outputs (exits, cohorts) the loss is ``sum_i output_weights[i] * mean_i``.
    """

    model: nn.Module
    num_classes: int
    optimizer: torch.optim.Optimizer | None = None
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # batch
    inputs: Tensor | None = None
    targets: Tensor | None = None
    indices: Tensor | None = None
    outputs: Outputs | None = None
    targets_soft: Tensor | None = None
    sample_weights: Tensor | None = None
    output_weights: list[float] | None = None
    loss: Tensor | None = None
    per_sample_loss: Tensor | None = None
    loss_terms: dict[str, Tensor] = field(default_factory=dict)
    # progress
    epoch: int = 0
    step: int = 0
    batch_index: int = 0
    max_epochs: int = 1
    steps_per_epoch: int = 1
    lr: float = 0.0
    lr_factor: float = 1.0  # the schedule's factor at this step: every group's lr / its base lr
    skip_batch: bool = False
    stop: bool = False
    stop_reason: str = ""
    # results and scratch space
    metrics: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    train_loader: Any = None
    eval_fn: Callable[[nn.Module], dict[str, Any]] | None = None
    rank: int = 0
    world_size: int = 1
    # autocast dtype of the forward and loss: "fp32", "bf16" or "fp16"; set from the config before
    # fit_start, a technique may change it there (early-bird's low-precision search)
    precision: str = "fp32"

    @property
    def max_steps(self) -> int:
        """Total optimizer steps planned for the fit."""
        return max(1, self.max_epochs * self.steps_per_epoch)

    @property
    def progress(self) -> float:
        """Fraction of planned steps done, in [0, 1]."""
        return min(1.0, self.step / self.max_steps)

    def add_loss_term(self, name: str, value: Tensor) -> None:
        """Add ``value`` to the loss and record it under ``name`` in ``loss_terms``."""
        if self.loss is None:
            raise RuntimeError("add_loss_term is only valid after the loss exists (after_loss)")
        self.loss = self.loss + value
        self.loss_terms[name] = value.detach()

    def count(self, name: str, amount: float) -> None:
        """Accumulate a counter (e.g. ``macs_saved``) reported in metrics and the summary."""
        self.counters[name] = self.counters.get(name, 0.0) + float(amount)

    @property
    def final_outputs(self) -> Tensor | None:
        """The prediction used for accuracy: the last element of a list of outputs."""
        out = self.outputs
        if isinstance(out, list | tuple):
            return out[-1]
        return out
