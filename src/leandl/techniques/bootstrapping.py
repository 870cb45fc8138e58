"""Bootstrapping (Reed, Lee, Anguelov, Szegedy, Erhan, Rabinovich; ICLR-W 2015, arXiv 1412.6596).

What: mix the given label with the model's own prediction, so a consistent prediction can
outvote a wrong label:

- soft: ``q~ = beta * q + (1 - beta) * p``, ``L = H(q~, p)`` (default ``beta = 0.95``);
- hard: ``q~ = beta * q + (1 - beta) * onehot(argmax p)`` (default ``beta = 0.8``).

``beta`` weights the *label* (ProSelfLC's ``eps = 1 - beta``). In Reed's soft form (and the SCE
repository's ``boot_soft``) the gradient flows through ``p`` inside the target, which adds
``(1 - beta) H(p)`` to the loss (it rewards low entropy); ``detach=True`` treats the target as a
constant instead.
When: ``before_loss`` revises ``state.targets_soft`` (the prediction of the final output).
Cost: one softmax. Hyper-parameters: ``mode`` (soft/hard), ``beta`` in [0, 1] (None: the mode's
default), ``detach``. Interactions: composes with label smoothing (order in the recipe decides
which revision applies first); a robust loss replacing the loss function receives the revised
target.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from leandl.registry import TECHNIQUES
from leandl.train.state import State
from leandl.train.technique import Technique

__all__ = ["DEFAULT_BETA", "bootstrap_targets", "Bootstrapping"]

DEFAULT_BETA = {"soft": 0.95, "hard": 0.8}


def bootstrap_targets(targets_soft: Tensor, logits: Tensor, beta: float | None = None,
                      mode: str = "soft", detach: bool = False) -> Tensor:
    """Bootstrapped targets ``beta * q + (1 - beta) * t`` with ``t = p`` (soft) or onehot(argmax p).

    Args:
        targets_soft: ``(B, K)`` label distributions ``q``.
        logits: ``(B, K)`` model outputs.
        beta: weight of the label in [0, 1]; None: 0.95 (soft) / 0.8 (hard).
        mode: ``soft`` or ``hard``.
        detach: soft mode: stop the gradient through ``p`` in the target.

    Example:
        >>> bootstrap_targets(torch.tensor([[1., 0.]]), torch.log(torch.tensor([[0.2, 0.8]])), 0.5, "hard")
        tensor([[0.5000, 0.5000]])
    """
    if mode not in DEFAULT_BETA:
        raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")
    b = DEFAULT_BETA[mode] if beta is None else float(beta)
    if not 0.0 <= b <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {b}")
    if mode == "hard":
        t = F.one_hot(logits.detach().argmax(dim=-1), logits.shape[-1]).to(targets_soft.dtype)
    else:
        p = F.softmax(logits.float(), dim=-1).to(targets_soft.dtype)
        t = p.detach() if detach else p
    return b * targets_soft + (1.0 - b) * t


@TECHNIQUES.register("bootstrapping")
class Bootstrapping(Technique):
    """Soft or hard bootstrapping of the training targets (arXiv 1412.6596)."""

    name = "bootstrapping"

    def __init__(self, mode: Literal["soft", "hard"] = "soft", beta: float | None = None,
                 detach: bool = False) -> None:
        if mode not in DEFAULT_BETA:
            raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")
        if beta is not None and not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.mode, self.detach = mode, bool(detach)
        self.beta = DEFAULT_BETA[mode] if beta is None else float(beta)

    def before_loss(self, state: State) -> None:
        state.targets_soft = bootstrap_targets(state.targets_soft, state.final_outputs, self.beta,
                                               self.mode, self.detach)
