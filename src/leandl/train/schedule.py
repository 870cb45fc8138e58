"""Learning-rate schedules as pure functions of the step (no pickled scheduler state).

``lr_at(step)`` is computed from the config every step, so resuming needs only the step.
Warm-up is linear from ``warmup_start_factor * lr`` over ``warmup_steps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Schedule", "lr_at"]


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule.

    Args:
        kind: ``constant``, ``step`` (multiply by ``gamma`` at each milestone fraction),
            ``cosine`` (to ``min_lr_factor * lr``), or ``onecycle`` (cosine up to ``lr`` over
            ``pct_start`` then cosine down to ``lr / final_div``).
        total_steps: planned optimizer steps.
        warmup_steps: linear warm-up steps (not used by ``onecycle``).
        milestones: fractions of training in (0, 1) for ``step``.
    """

    kind: str = "constant"
    total_steps: int = 1
    warmup_steps: int = 0
    milestones: tuple[float, ...] = field(default=(0.5, 0.75))
    gamma: float = 0.1
    min_lr_factor: float = 0.0
    pct_start: float = 0.3
    final_div: float = 1e4
    warmup_start_factor: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "step", "cosine", "onecycle"):
            raise ValueError(f"unknown schedule '{self.kind}'")
        if self.total_steps < 1 or self.warmup_steps < 0:
            raise ValueError("total_steps must be >= 1 and warmup_steps >= 0")

    def factor(self, step: int) -> float:
        """Multiplier of the base learning rate at optimizer step ``step`` (0-based)."""
        if self.kind == "onecycle":
            return _onecycle(step, self.total_steps, self.pct_start, self.final_div)
        if step < self.warmup_steps:
            f0 = self.warmup_start_factor
            return f0 + (1.0 - f0) * step / self.warmup_steps
        t = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        t = min(max(t, 0.0), 1.0)
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** sum(t >= m for m in self.milestones)
        lo = self.min_lr_factor
        return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * t))


def _onecycle(step: int, total: int, pct_start: float, final_div: float) -> float:
    up = max(1, int(pct_start * total))
    start = 1.0 / 25.0
    if step < up:
        return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * step / up))
    t = min(1.0, (step - up) / max(1, total - up))
    end = 1.0 / final_div
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def lr_at(schedule: Schedule, base_lr: float, step: int) -> float:
    """Learning rate at ``step``: ``base_lr * schedule.factor(step)``."""
    return base_lr * schedule.factor(step)
