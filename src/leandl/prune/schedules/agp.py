"""Automated Gradual Pruning (AGP): raise sparsity along a cubic curve during training.

What: every ``frequency`` optimizer steps from ``t0`` to ``t0 + n * dt`` the sparsity is raised
to

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3,

fast at first (while redundancy is high) and slowly near the end; masks are re-applied after
every optimizer step so pruned weights stay zero and nothing regrows. Afterwards training
continues at ``s_f`` so the network recovers.

Modes:
* ``structured``: the sparsity is the fraction of *units* (channels, heads, MLP units) removed
  from the dependency groups, ranked by a registered criterion (``l1``, ``bn_scale`` ...),
  ``layerwise`` or ``global``; at ``fit_end`` the masked units are removed physically (the
  edit is recorded, so the checkpoint reloads without pickle).
* ``unstructured``: the sparsity is the fraction of Conv/Linear *weights* zeroed by magnitude
  (global or layer-wise); at ``fit_end`` the masks are folded into the weights (no hooks). No
  dense speed-up: see :func:`leandl.prune.unstructured.storage_report`.

When: pruning while training (or fine-tuning) instead of one-shot pruning + fine-tuning; at
equal budget gradual pruning usually keeps more accuracy at high sparsity.
Cost: one criterion evaluation per pruning step and a mask multiply per optimizer step.
Hyper-parameters: ``final_sparsity`` (s_f), ``initial_sparsity`` (s_i, default 0), ``start`` /
``end`` (fractions of the planned steps, defaults 0 / 0.75), ``frequency`` (steps between
pruning steps; 0 = once per epoch). TF defaults: frequency 10, exponent 3.
Interactions: SWA and other weight-averaging techniques must run after it (order 40 here);
optimizer momentum is not masked, the masks are simply re-applied after each step.
Paper: Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
compression", arXiv 1710.01878.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from leandl.prune.schedules import _masks as M
from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["agp_sparsity", "GradualPruning"]


def agp_sparsity(step: int, *, initial: float, final: float, start_step: int, n_steps: int,
                 frequency: int) -> float:
    """The AGP sparsity in force after ``step`` optimizer steps.

    ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3`` evaluated at the last pruning point
    ``t = t0 + floor((step - t0) / dt) dt`` (a staircase: sparsity only changes at pruning
    steps); 0 before ``t0`` (no pruning yet) and ``s_f`` from ``t0 + n dt`` on.

    Args:
        step: optimizer steps completed.
        initial: s_i.
        final: s_f.
        start_step: t0.
        n_steps: n, the number of pruning steps after t0 (>= 1).
        frequency: dt, optimizer steps between pruning steps (>= 1).
    """
    if n_steps < 1 or frequency < 1:
        raise ValueError(f"n_steps and frequency must be >= 1, got {n_steps} and {frequency}")
    if step < start_step:
        return 0.0
    t = start_step + ((step - start_step) // frequency) * frequency
    frac = min(1.0, (t - start_step) / (n_steps * frequency))
    return final + (initial - final) * (1.0 - frac) ** 3


@TECHNIQUES.register("gradual_pruning")
class GradualPruning(Technique):
    """AGP: cubic sparsity schedule, masks during training, removal/folding at the end (arXiv 1710.01878)."""

    name = "gradual_pruning"
    order = 40
    changes_model = True

    def __init__(self, final_sparsity: float = 0.5, initial_sparsity: float = 0.0, start: float = 0.0,
                 end: float = 0.75, frequency: int = 0,
                 mode: Literal["structured", "unstructured"] = "structured", criterion: str = "l1",
                 scope: Literal["layerwise", "global"] = "layerwise", max_ratio: float = 0.9,
                 ignored_layers: list[str] | None = None, remove: bool = True) -> None:
        M.check_fraction("final_sparsity", final_sparsity)
        M.check_fraction("initial_sparsity", initial_sparsity, high=final_sparsity, high_open=False)
        M.check_fraction("start", start)
        M.check_fraction("end", end, low=start, high_open=False)
        if end <= start:
            raise ValueError(f"end ({end}) must be after start ({start})")
        M.check_fraction("max_ratio", max_ratio, high_open=True)
        if frequency < 0:
            raise ValueError(f"frequency must be >= 0 steps (0 = once per epoch), got {frequency}")
        self.final, self.initial, self.start, self.end = final_sparsity, initial_sparsity, start, end
        self.frequency, self.mode, self.criterion, self.scope = frequency, mode, criterion, scope
        self.max_ratio, self.remove = max_ratio, remove
        self.ignored = list(ignored_layers) if ignored_layers is not None else None
        self.masks: dict[str, Tensor] = {}
        self.sparsity = 0.0
        self.history: list[tuple[int, float]] = []
        self._groups: list[Any] = []
        self._example: Tensor | None = None
        self._plan: tuple[int, int, int] = (0, 1, 1)

    # ------------------------------------------------------------------ schedule
    def plan(self, max_steps: int, steps_per_epoch: int) -> tuple[int, int, int]:
        """``(t0, n, dt)`` in optimizer steps for a fit of ``max_steps`` steps."""
        dt = self.frequency or steps_per_epoch
        t0 = int(round(self.start * max_steps))
        span = max(int(round(self.end * max_steps)) - t0, dt)
        return t0, max(1, math.ceil(span / dt)), dt

    def sparsity_at(self, step: int) -> float:
        """Sparsity in force after ``step`` optimizer steps of the planned fit."""
        t0, n, dt = self._plan
        return agp_sparsity(step, initial=self.initial, final=self.final, start_step=t0, n_steps=n, frequency=dt)

    # ------------------------------------------------------------------ events
    def fit_start(self, state: State) -> None:
        self._plan = self.plan(state.max_steps, state.steps_per_epoch)
        if self.mode == "structured":
            self._example = M.example_batch(state)
            self._groups = M.discover_groups(state.model, self._example, self._ignored(state.model))
        self._update(state, 0)

    def _ignored(self, model: torch.nn.Module) -> list[str]:
        if self.ignored is not None:
            return self.ignored
        from leandl.prune.schedules._defaults import default_ignored

        return default_ignored(model)

    def after_step(self, state: State) -> None:
        done = state.step + 1
        t0, n, dt = self._plan
        if done >= t0 and (done - t0) % dt == 0 and done <= t0 + n * dt:
            self._update(state, done)
        self._apply(state)

    def _update(self, state: State, done: int) -> None:
        s = self.sparsity_at(done)
        if s <= self.sparsity and self.masks:
            return
        self.sparsity = s
        self.history.append((done, s))
        model = state.model
        if self.mode == "unstructured":
            from leandl.prune.unstructured import magnitude_masks, prunable_weights

            self.masks = magnitude_masks(prunable_weights(model, self._ignored(model)), s, self.scope)
        else:
            scores = M.criterion_scores(model, self._groups, self.criterion)
            counts = M.prune_counts(scores, s, self.scope, self.max_ratio)
            self.masks = M.masks_from_scores(scores, counts, self.masks or None)
        self._apply(state)

    def _apply(self, state: State) -> None:
        if not self.masks:
            return
        if self.mode == "unstructured":
            from leandl.prune.unstructured import apply_masks_

            apply_masks_(state.model, self.masks)
        else:
            M.apply_group_masks_(state.model, self._groups, self.masks)

    def fit_end(self, state: State) -> None:
        self._apply(state)
        if self.mode == "unstructured":
            from leandl.prune.unstructured import fold_masks_

            fold_masks_(state.model, self.masks)
        elif self.remove and self.masks:
            state.model = M.remove_masked(state.model, self._example, self.masks)

    # ------------------------------------------------------------------ resume / report
    def state_dict(self) -> dict[str, Any]:
        return {"masks": dict(self.masks), "sparsity": self.sparsity, "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = dict(state["masks"])
        self.sparsity = float(state["sparsity"])
        self.history = [tuple(h) for h in state["history"]]

    def summary(self) -> dict[str, Any]:
        units = sum(m.numel() for m in self.masks.values())
        kept = sum(int(m.sum()) for m in self.masks.values())
        return {"agp_final_sparsity": self.sparsity,
                "agp_measured_sparsity": 1.0 - kept / units if units else 0.0,
                "agp_pruning_steps": len(self.history), "agp_mode": self.mode}
