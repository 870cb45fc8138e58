"""Shared maths and plumbing of the distillation techniques (not registered).

* :func:`tempered_kl` - per-sample ``T^2 KL(softmax(t/T) || softmax(s/T))``, the core of every
  logit-matching loss (KD, DML, FFL, BYOT).
* :func:`sigmoid_rampup` - ``exp(-5 (1 - t/L)^2)``, the online-KD ramp-up (ONE, FFL).
* :func:`final_logits` / :func:`as_list` - read a tensor or a list of logits.
* :class:`AuxParams` - trains modules a technique owns (FitNets regressors) with their own
  optimizer that mirrors the trainer's (class, hyper-parameters and learning-rate schedule).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leandl.errors import ModelError

__all__ = ["tempered_kl", "sigmoid_rampup", "final_logits", "as_list", "AuxParams"]


def tempered_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Per-sample ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, shape ``(B,)``.

    The teacher side is used as given (detach it for a constant teacher). The ``T^2`` factor
    keeps the gradient ``T (p_s^T - p_t^T)`` on the scale of the hard-label gradient.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_ps = F.log_softmax(student_logits / temperature, dim=-1)
    log_pt = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=-1)
    return kl * temperature**2


def sigmoid_rampup(progress: float, length: float) -> float:
    """``exp(-5 (1 - min(progress / length, 1))^2)``; 1 for ``length <= 0``."""
    if length <= 0:
        return 1.0
    t = min(max(progress / length, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def as_list(outputs: Tensor | list[Tensor] | tuple[Tensor, ...], who: str) -> list[Tensor]:
    """The outputs as a list of at least two logits tensors, else a :class:`ModelError`."""
    if isinstance(outputs, list | tuple) and len(outputs) >= 2:
        return list(outputs)
    raise ModelError(
        f"technique '{who}' needs a model that returns a list of at least two logits tensors "
        f"(a cohort of peers or an early-exit model), got "
        f"{type(outputs).__name__}{'' if not isinstance(outputs, list | tuple) else f' of {len(outputs)}'}",
        fix="wrap the peers in leandl.distill.Cohort (mutual), FusionCohort (fusion), or use a multi-exit model (self)",
    )


def final_logits(outputs: Tensor | list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """The logits used for prediction: the tensor itself or the last of a list."""
    return outputs[-1] if isinstance(outputs, list | tuple) else outputs


class AuxParams:
    """Parameters a technique owns, trained beside the model with their own optimizer.

    The trainer builds its optimizer from ``state.model`` after ``fit_start``; modules that
    must not end up in the student's checkpoint (a FitNets regressor) are kept here instead.
    :meth:`step` is called at ``before_step`` (after ``loss.backward()`` filled their gradients):
    it copies the trainer's current learning rate and steps an optimizer of the same class and
    hyper-parameters as the trainer's.

    Args:
        modules: the modules to train.
    """

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = nn.ModuleList(modules)
        self.optimizer: torch.optim.Optimizer | None = None

    def parameters(self) -> list[nn.Parameter]:
        """The trainable parameters."""
        return [p for p in self.modules.parameters() if p.requires_grad]

    def step(self, main: torch.optim.Optimizer | None) -> None:
        """One optimizer step with the trainer's current learning rate, then zero the grads."""
        params = self.parameters()
        if not params or main is None:
            return
        if self.optimizer is None:
            defaults = {k: v for k, v in main.defaults.items() if k in _ALLOWED.get(type(main), ())}
            self.optimizer = type(main)(params, **defaults)
        lr = main.param_groups[0]["lr"]
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        """Module weights and optimizer state (for resume)."""
        out: dict[str, Any] = {"modules": self.modules.state_dict()}
        if self.optimizer is not None:
            out["optimizer"] = self.optimizer.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any], main: torch.optim.Optimizer | None) -> None:
        """Restore :meth:`state_dict` (the optimizer is rebuilt against ``main``)."""
        self.modules.load_state_dict(state["modules"])
        if "optimizer" in state and main is not None:
            self.step_setup(main)
            self.optimizer.load_state_dict(state["optimizer"])

    def step_setup(self, main: torch.optim.Optimizer) -> None:
        """Build the optimizer now (used by resume)."""
        if self.optimizer is None:
            defaults = {k: v for k, v in main.defaults.items() if k in _ALLOWED.get(type(main), ())}
            self.optimizer = type(main)(self.parameters(), **defaults)


_ALLOWED: dict[type, tuple[str, ...]] = {
    torch.optim.SGD: ("lr", "momentum", "weight_decay", "nesterov", "dampening"),
    torch.optim.Adam: ("lr", "betas", "eps", "weight_decay"),
    torch.optim.AdamW: ("lr", "betas", "eps", "weight_decay"),
}
