"""Wall-clock latency and throughput of a forward pass, and fair A/B timing on a noisy machine.

Definitions:

- latency: wall time (``time.perf_counter``) of one call ``fn(*inputs)`` at the inputs' batch
  size, after ``warmup`` untimed calls, under ``torch.inference_mode()``, with the torch
  intra-op thread count stated. On CUDA each call is followed by ``torch.cuda.synchronize``.
- ``median_ms``, ``p90_ms`` (linear interpolation between order statistics, as
  ``numpy.percentile``), ``mean_ms``: over the timed repeats, in milliseconds.
- ``throughput_per_s = batch_size / (median_ms / 1000)``: samples per second.
- allocator: timings are taken with glibc told to keep freed memory in its heap
  (:mod:`leandl.measure.allocator`); otherwise page faults on fresh activation buffers dominate
  CPU latency and its noise. The state is recorded in :attr:`LatencyStats.allocator`.

The machines leandl targets drift by up to +-50 % within a minute, so never compare two
numbers taken minutes apart: :func:`compare_latency` times variants in alternating rounds and
reports per-round ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from leandl.measure._util import as_args, batch_size_of, eval_mode, num_threads
from leandl.measure.allocator import steady_allocator

__all__ = ["LatencyStats", "LatencyComparison", "measure_latency", "compare_latency", "percentile"]


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one forward pass (ms) at ``batch_size`` with ``threads`` intra-op threads."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    repeats: int
    batch_size: int
    threads: int
    throughput_per_s: float
    allocator: str = "unset"

    def to_dict(self) -> dict[str, float | int | str]:
        """The fields as a plain dict (units are in the key names)."""
        return asdict(self)


@dataclass(frozen=True)
class LatencyComparison:
    """Result of :func:`compare_latency`.

    Attributes:
        baseline: name of the reference variant (the first one given).
        median_ms: per variant, the median over rounds of the round medians (ms).
        round_ms: per variant, the median latency of each round (ms), in round order.
        speedup: per variant, ``baseline_round_ms / variant_round_ms`` for each round
            (> 1 means faster than the baseline; the baseline's own list is all 1.0).
        speedup_median: per variant, the median of its per-round speed-ups.
        threads: intra-op threads in effect during timing.
        stats: per variant, :class:`LatencyStats` over all its timed calls of all rounds.
    """

    baseline: str
    median_ms: dict[str, float]
    round_ms: dict[str, list[float]]
    speedup: dict[str, list[float]]
    speedup_median: dict[str, float]
    threads: int
    stats: dict[str, LatencyStats] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default method)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure_latency(
    fn_or_model: Callable[..., Any],
    example_input: Any,
    *,
    warmup: int = 5,
    repeats: int = 20,
    threads: int | None = None,
    min_time_s: float = 0.0,
) -> LatencyStats:
    """Time ``fn_or_model(*example_input)``.

    Args:
        fn_or_model: an ``nn.Module`` (run in eval mode, flags restored) or any callable.
        example_input: a tensor or a tuple/list of positional arguments; its dim 0 is the batch.
        warmup: untimed calls first (>= 0).
        repeats: minimum number of timed calls (>= 1).
        threads: ``torch.set_num_threads`` value during timing (restored afterwards);
            ``None`` keeps the current setting. The stats record the value actually used.
        min_time_s: keep timing past ``repeats`` until this much timed wall time has passed.

    Returns:
        :class:`LatencyStats`.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    allocator = steady_allocator()
    with num_threads(threads) as used:
        times = _time_calls(fn_or_model, example_input, warmup, repeats, min_time_s)
    return _stats(times, batch_size_of(example_input), used, allocator)


def _time_calls(fn: Callable[..., Any], example_input: Any, warmup: int, repeats: int,
                min_time_s: float = 0.0) -> list[float]:
    """Wall times (ms) of ``repeats`` calls after ``warmup``, in eval and inference mode."""
    args = as_args(example_input)
    sync = _synchronizer(args)
    times: list[float] = []
    with eval_mode(fn), torch.inference_mode():
        for _ in range(warmup):
            fn(*args)
        sync()
        spent = 0.0
        while len(times) < repeats or spent < min_time_s:
            start = time.perf_counter()
            fn(*args)
            sync()
            elapsed = time.perf_counter() - start
            spent += elapsed
            times.append(elapsed * 1000.0)
    return times


def _stats(times: list[float], batch: int, threads: int, allocator: str) -> LatencyStats:
    median = statistics.median(times)
    return LatencyStats(
        median_ms=median,
        p90_ms=percentile(times, 90.0),
        mean_ms=statistics.fmean(times),
        repeats=len(times),
        batch_size=batch,
        threads=threads,
        throughput_per_s=batch / (median / 1000.0) if median > 0 else float("inf"),
        allocator=allocator,
    )


def compare_latency(
    fns: dict[str, Callable[..., Any]],
    example_input: Any,
    rounds: int = 5,
    *,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
) -> LatencyComparison:
    """Time several variants in alternating rounds and report per-round ratios.

    Every variant is first called ``max(warmup, 2) + 1`` times. Then each round calls every
    variant ``warmup`` times untimed and ``repeats`` times timed; the order alternates (forward
    in even rounds, reversed in odd ones) so slow drifts of the machine hit all variants alike. On a machine that drifts within
    seconds, many short rounds (e.g. ``rounds=20, warmup=1, repeats=3``) give the steadiest
    ratios; the warm-up call keeps each variant's weights in cache for its timed calls, which
    matters for small models. The first variant in ``fns`` is the baseline.

    Args:
        fns: name -> model or callable, at least one.
        example_input: shared inputs (tensor or tuple of positional arguments).
        rounds: number of alternating rounds (>= 1).
        warmup: untimed calls per variant in each round (and before the first one).
        repeats, threads: passed to :func:`measure_latency` in each round.

    Returns:
        :class:`LatencyComparison`.
    """
    if not fns:
        raise ValueError("compare_latency needs at least one variant")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(fns)
    round_ms: dict[str, list[float]] = {n: [] for n in names}
    pooled: dict[str, list[float]] = {n: [] for n in names}
    allocator = steady_allocator()
    with num_threads(threads) as used:
        for name in names:
            _time_calls(fns[name], example_input, max(warmup, 2), 1)
        for r in range(rounds):
            for name in names if r % 2 == 0 else reversed(names):
                times = _time_calls(fns[name], example_input, warmup, repeats)
                round_ms[name].append(statistics.median(times))
                pooled[name].extend(times)
    base = names[0]
    speedup = {
        n: [b / v if v > 0 else float("inf") for b, v in zip(round_ms[base], round_ms[n])]
        for n in names
    }
    batch = batch_size_of(example_input)
    return LatencyComparison(
        baseline=base,
        median_ms={n: statistics.median(v) for n, v in round_ms.items()},
        round_ms=round_ms,
        speedup=speedup,
        speedup_median={n: statistics.median(v) for n, v in speedup.items()},
        threads=used,
        stats={n: _stats(pooled[n], batch, used, allocator) for n in names},
    )


def _synchronizer(args: tuple[Any, ...]) -> Callable[[], None]:
    """``torch.cuda.synchronize`` when any input lives on CUDA, else a no-op."""
    on_cuda = any(isinstance(a, torch.Tensor) and a.is_cuda for a in args)
    if on_cuda:
        return torch.cuda.synchronize
    return lambda: None
