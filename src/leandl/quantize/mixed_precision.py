"""Mixed precision: per-layer weight bits from measured sensitivity under a size budget.

Sensitivity (HAWQ-style in spirit, arXiv 1905.03696 / 1911.03852, measured instead of the Hessian):
for each quantisable layer ``i`` and candidate width ``b``, quantise only that layer's weights
to ``b`` bits (post-training, per-channel symmetric, clip range by MSE search; ``b = 1`` is
binary ``mean|w| * sign(w)``) and measure

    Omega_i(b) = mean over a calibration batch of ||f(x) - f_{i,b}(x)||^2   (``metric="mse"``)
    Omega_i(b) = CE(f_{i,b}(x), y) - CE(f(x), y)                               (``metric="loss"``)

Allocation: minimise ``sum_i Omega_i(b_i)`` subject to ``sum_i n_i b_i / 8 <= budget`` bytes
(``n_i`` = weights of layer ``i``), an exact multiple-choice knapsack solved by dynamic
programming over the Pareto front of (size, cost) partial solutions (HAWQ-V3 uses an ILP).
The chosen bits feed :class:`leandl.quantize.qat.QAT` ``(bits=...)``, so they end up in the
stage summary and, through the ``qat_swap`` edit, in the checkpoint.
Cost: ``L * |candidates|`` forward passes over the calibration batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leandl.errors import ConfigError
from leandl.quantize.observers import channel_minmax
from leandl.quantize.primitives import choose_qparams, fake_quantize, qrange
from leandl.quantize.qat import quantizable_layers

__all__ = [
    "ptq_weight",
    "layer_weight_counts",
    "weight_bytes",
    "layer_sensitivity",
    "allocate_bits",
    "choose_bits",
]


@torch.no_grad()
def ptq_weight(w: Tensor, bits: int, grid: int = 20) -> Tensor:
    """Per-output-channel symmetric ``bits``-bit quantisation of ``w`` with MSE-searched clipping."""
    if bits == 1:
        dims = list(range(1, w.dim()))
        return w.abs().mean(dim=dims, keepdim=True) * torch.where(w >= 0, 1.0, -1.0)
    lo, hi = channel_minmax(w, 0)
    qmin, qmax = qrange(bits, True)
    best, best_err = w.clone(), torch.full((w.shape[0],), float("inf"))
    for r in torch.linspace(0.2, 1.0, grid).tolist():
        s, z = choose_qparams(lo * r, hi * r, bits, True)
        wq = fake_quantize(w, s, z, qmin, qmax, 0)
        err = (wq - w).pow(2).reshape(w.shape[0], -1).sum(1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best[better] = wq[better]
    return best


def layer_weight_counts(model: nn.Module, names: Sequence[str] | None = None) -> dict[str, int]:
    """Number of weights of each quantisable layer."""
    modules = dict(model.named_modules())
    return {n: modules[n].weight.numel() for n in (names or quantizable_layers(model))}


def weight_bytes(counts: dict[str, int], bits: dict[str, int]) -> float:
    """Size of the quantised weights in bytes, ``sum_i n_i b_i / 8``."""
    return sum(counts[n] * bits[n] for n in counts) / 8.0


def _exits(output: Tensor | list[Tensor] | tuple[Tensor, ...]) -> list[Tensor]:
    """The model's logits as a list: one tensor, or one per exit of a multi-exit model."""
    return list(output) if isinstance(output, list | tuple) else [output]


def _loss(outputs: list[Tensor], targets: Tensor) -> Tensor:
    return sum(F.cross_entropy(o, targets) for o in outputs) / len(outputs)


@torch.no_grad()
def layer_sensitivity(model: nn.Module, x: Tensor, candidates: Sequence[int], *,
                      targets: Tensor | None = None, metric: str = "mse",
                      names: Sequence[str] | None = None) -> dict[str, dict[int, float]]:
    """``Omega[name][bits]``: output change when only that layer's weights are quantised.

    A multi-exit model (a list or tuple of logits, one per exit) is judged on every exit: the
    MSE is summed over exits and the loss averaged over them, since early-exit inference
    answers from any of them.
    """
    if metric not in ("mse", "loss"):
        raise ConfigError(f"metric must be 'mse' or 'loss', got {metric!r}", where="mixed_precision")
    if metric == "loss" and targets is None:
        raise ConfigError("metric 'loss' needs targets", where="mixed_precision")
    was_training = model.training
    model.eval()
    ref = _exits(model(x))
    ref_loss = _loss(ref, targets) if targets is not None else None
    modules = dict(model.named_modules())
    out: dict[str, dict[int, float]] = {}
    for name in names or quantizable_layers(model):
        w = modules[name].weight
        original = w.detach().clone()
        out[name] = {}
        for b in candidates:
            w.copy_(ptq_weight(original, b))
            y = _exits(model(x))
            if metric == "mse":
                out[name][b] = sum(float((yi - ri).pow(2).sum(1).mean()) for yi, ri in zip(y, ref, strict=True))
            else:
                out[name][b] = float(_loss(y, targets) - ref_loss)
            w.copy_(original)
    model.train(was_training)
    return out


def allocate_bits(sensitivity: dict[str, dict[int, float]], counts: dict[str, int],
                  budget_bytes: float) -> dict[str, int]:
    """Exact minimum of ``sum Omega_i(b_i)`` with ``sum n_i b_i / 8 <= budget_bytes``.

    Dynamic programming over layers keeping only Pareto-optimal ``(size, cost)`` partial
    solutions (a partial solution both larger and costlier than another is dropped).

    Raises:
        ConfigError: even the smallest candidate widths exceed the budget.
    """
    budget_bits = budget_bytes * 8 + 1e-9
    front: list[tuple[int, float, tuple[int, ...]]] = [(0, 0.0, ())]
    names = list(sensitivity)
    for name in names:
        extended = [(size + counts[name] * b, cost + max(omega, 0.0), choice + (b,))
                    for size, cost, choice in front for b, omega in sensitivity[name].items()
                    if size + counts[name] * b <= budget_bits]
        extended.sort(key=lambda t: (t[0], t[1]))
        front = []
        for item in extended:
            if not front or item[1] < front[-1][1]:
                front.append(item)
        if not front:
            smallest = sum(counts[n] * min(sensitivity[n]) for n in names) / 8
            raise ConfigError(f"the size budget {budget_bytes:.0f} B is below the smallest "
                              f"allocation ({smallest:.0f} B)", where="mixed_precision",
                              fix="raise the budget or add smaller candidate bit widths")
    best = min(front, key=lambda t: (t[1], t[0]))
    return dict(zip(names, best[2], strict=True))


def choose_bits(model: nn.Module, x: Tensor, budget_fraction: float, *,
                candidates: Sequence[int] = (1, 2, 3, 4, 6, 8), reference_bits: int = 8,
                targets: Tensor | None = None, metric: str = "mse") -> tuple[dict[str, int], dict[str, Any]]:
    """Per-layer weight bits within ``budget_fraction`` of the uniform ``reference_bits`` size.

    Returns:
        ``(bits, info)``; ``info`` holds ``sensitivity``, ``counts``, ``budget_bytes``,
        ``weight_bytes`` and ``reference_bytes``.
    """
    if not 0.0 < budget_fraction <= 1.0:
        raise ConfigError(f"budget_fraction must be in (0, 1], got {budget_fraction}", where="mixed_precision")
    counts = layer_weight_counts(model)
    reference = weight_bytes(counts, dict.fromkeys(counts, reference_bits))
    sens = layer_sensitivity(model, x, candidates, targets=targets, metric=metric, names=list(counts))
    bits = allocate_bits(sens, counts, budget_fraction * reference)
    info = {"sensitivity": sens, "counts": counts, "budget_bytes": budget_fraction * reference,
            "weight_bytes": weight_bytes(counts, bits), "reference_bytes": reference}
    return bits, info
