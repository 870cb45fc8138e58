"""Soft-Root-Sign activation (Zhou, Li, Huo, Kung; arXiv 2003.00547, IEEE TNNLS).

``SRS(x) = x / (x / alpha + exp(-x / beta))`` with trainable ``alpha, beta > 0``.

Properties: smooth, non-monotonic, bounded: ``SRS(x) -> alpha`` as ``x -> +inf`` and ``-> 0^-`` as
``x -> -inf``; ``SRS(0) = 0`` and ``SRS'(0) = 1``; minimum at ``x = -beta`` equal to
``-alpha beta / (alpha e - beta)``. Derivative
``SRS'(x) = exp(-x/beta) (1 + x/beta) / (x/alpha + exp(-x/beta))^2``. The denominator stays
positive only while ``beta < e * alpha``; the module keeps ``alpha >= min_value`` and
``beta <= 0.99 e alpha`` by clamping in the forward pass.

Numerics: the naive formula overflows (``exp(-x/beta)`` for very negative ``x``) and its gradient
becomes NaN there. The equivalent stable form used here is, with ``u = exp(-|x|/beta) <= 1``,
``x / (x/alpha + u)`` for ``x > 0`` and ``x u / (x u / alpha + 1)`` for ``x <= 0``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["soft_root_sign", "SoftRootSign"]


def soft_root_sign(x: Tensor, alpha: Tensor | float = 2.0, beta: Tensor | float = 3.0) -> Tensor:
    """``x / (x/alpha + exp(-x/beta))``, computed stably (see the module docstring).

    Args:
        x: input of any shape.
        alpha, beta: positive scalars or tensors broadcastable to ``x`` (``beta < e alpha``).

    Example:
        >>> soft_root_sign(torch.tensor([0.0, 1.0]), 1.0, 1.0)
        tensor([0.0000, 0.7311])
    """
    pos = x > 0
    xp = torch.where(pos, x, torch.zeros_like(x))  # gradient flows only through the active branch
    xn = torch.where(pos, torch.zeros_like(x), x)
    up = torch.exp(-xp / beta)
    un = torch.exp(xn / beta)
    return xp / (xp / alpha + up) + xn * un / (xn * un / alpha + 1.0)


class SoftRootSign(nn.Module):
    """Soft-Root-Sign with trainable ``alpha`` and ``beta`` (arXiv 2003.00547).

    Args:
        alpha: initial alpha (upper asymptote), > 0; 2.0 as in common reimplementations.
        beta: initial beta (location of the minimum, ``-beta``), in (0, e * alpha); 3.0.
        num_parameters: 1 (one pair per layer) or the channel count (one pair per channel of
            dim 1, like ``nn.PReLU``).
        trainable: learn alpha and beta (else they are buffers).
        min_value: lower clamp for alpha and beta in the forward pass.
    """

    def __init__(self, alpha: float = 2.0, beta: float = 3.0, num_parameters: int = 1,
                 trainable: bool = True, min_value: float = 1e-2) -> None:
        super().__init__()
        if alpha <= 0 or beta <= 0:
            raise ValueError(f"alpha and beta must be > 0, got alpha={alpha}, beta={beta}")
        if beta >= math.e * alpha:
            raise ValueError(f"beta must be < e * alpha ({math.e * alpha:.4g}) or the denominator hits 0")
        if num_parameters < 1:
            raise ValueError("num_parameters must be >= 1")
        a = torch.full((num_parameters,), float(alpha))
        b = torch.full((num_parameters,), float(beta))
        if trainable:
            self.alpha, self.beta = nn.Parameter(a), nn.Parameter(b)
        else:
            self.register_buffer("alpha", a)
            self.register_buffer("beta", b)
        self.num_parameters = num_parameters
        self.min_value = min_value

    def forward(self, x: Tensor) -> Tensor:
        """Elementwise SRS; per-channel parameters broadcast along dim 1 of ``(N, C, ...)``."""
        a = self.alpha.clamp_min(self.min_value)
        b = torch.minimum(self.beta.clamp_min(self.min_value), 0.99 * math.e * a)
        if self.num_parameters > 1:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            a, b = a.view(shape), b.view(shape)
        return soft_root_sign(x, a, b)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
