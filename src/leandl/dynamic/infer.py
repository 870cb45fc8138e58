"""Batched early-exit inference that really stops computing for samples that have exited.

The multi-exit model runs segment by segment; after exit k only the rows whose confidence is
below ``T_k`` are kept (``h = h[keep]``) and go on, so later segments see smaller batches and
the wall-clock time falls with the exit fractions. :func:`measure_exit_speedup` times a whole
data set this way against the plain backbone in alternating rounds (same batch size, threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from leandl.dynamic.multi_exit import MultiExit
from leandl.dynamic.policy import confidence

__all__ = ["EarlyExitResult", "early_exit_predict", "predict_in_batches", "measure_exit_speedup"]


@dataclass
class EarlyExitResult:
    """Logits ``(N, C)`` of the exit each sample left at, and that exit's index ``(N,)``."""

    logits: Tensor
    exit_index: Tensor


@torch.no_grad()
def early_exit_predict(model: MultiExit, x: Tensor, thresholds: Sequence[float],
                       criterion: str = "max_prob") -> EarlyExitResult:
    """Run ``x`` (N, ...) with early exits; samples leave at the first exit with conf >= T_k.

    Rows that exit are dropped from the batch before the next segment runs.
    """
    k_total = model.num_exits
    if len(thresholds) != k_total - 1:
        raise ValueError(f"{k_total} exits need {k_total - 1} thresholds, got {len(thresholds)}")
    n = x.shape[0]
    active = torch.arange(n, device=x.device)
    exit_index = torch.full((n,), k_total - 1, dtype=torch.long, device=x.device)
    out: Tensor | None = None
    h, prev = x, None
    for k in range(k_total):
        h = model.run_segment(k, h)
        z = model.exit_logits(k, h, prev)
        if out is None:
            out = z.new_empty(n, z.shape[-1])
        if k == k_total - 1:
            out[active] = z
            break
        done = confidence(z, criterion) >= thresholds[k]
        if bool(done.any()):
            out[active[done]] = z[done]
            exit_index[active[done]] = k
            keep = ~done
            if not bool(keep.any()):
                break
            active, h, z = active[keep], h[keep], z[keep]
        prev = z
    return EarlyExitResult(logits=out, exit_index=exit_index)


def predict_in_batches(model: MultiExit, x: Tensor, batch_size: int, thresholds: Sequence[float],
                       criterion: str = "max_prob") -> EarlyExitResult:
    """:func:`early_exit_predict` over ``x`` in chunks of ``batch_size``."""
    parts = [early_exit_predict(model, x[i:i + batch_size], thresholds, criterion)
             for i in range(0, x.shape[0], batch_size)]
    return EarlyExitResult(torch.cat([p.logits for p in parts]), torch.cat([p.exit_index for p in parts]))


def measure_exit_speedup(model: MultiExit, x: Tensor, batch_size: int, thresholds: Sequence[float],
                         criterion: str = "max_prob", rounds: int = 5, repeats: int = 3,
                         threads: int | None = None) -> dict[str, Any]:
    """Wall-clock of the whole set ``x`` with early exits vs the plain backbone.

    Both run in eval mode in chunks of ``batch_size``, alternating rounds
    (:func:`leandl.measure.compare_latency`).

    Returns:
        ``full_ms`` and ``early_exit_ms`` (median ms per pass over ``x``), ``speedup`` (median
        of per-round ratios), ``batch_size``, ``threads``, ``n``.
    """
    from leandl.measure import compare_latency

    model.eval()
    backbone = model.backbone

    @torch.no_grad()
    def full(inp: Tensor) -> None:
        for i in range(0, inp.shape[0], batch_size):
            backbone(inp[i:i + batch_size])

    def early(inp: Tensor) -> None:
        predict_in_batches(model, inp, batch_size, thresholds, criterion)

    cmp = compare_latency({"full": full, "early_exit": early}, x, rounds=rounds, warmup=1,
                          repeats=repeats, threads=threads)
    return {"full_ms": cmp.median_ms["full"], "early_exit_ms": cmp.median_ms["early_exit"],
            "speedup": cmp.speedup_median["early_exit"], "batch_size": int(batch_size),
            "threads": int(cmp.threads), "n": int(x.shape[0])}
