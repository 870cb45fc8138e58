"""Benchmark a model on several backends: outputs checked against eager first, then timed.

For every backend, :func:`bench_backends`

1. builds it (``BACKENDS.get(name)().build``); a build error makes every row of that backend
   ``status = "failed: <reason>"`` (the backend is reported, never dropped); a backend that
   cannot run here at all (:meth:`Backend.unavailable` gives a reason, or ``build`` raises
   :class:`BackendUnavailable`: a torch without TorchScript, no torchao, static int8 without
   calibration batches) is ``status = "skipped: <reason>"``;
2. compares its outputs with eager PyTorch on ``check_inputs`` (a batch of real or synthetic
   inputs): ``max_abs_diff = max |y_backend - y_eager|`` and ``top1_agreement`` = fraction of
   samples with the same argmax;
3. for each thread count and batch size, times all backends together with
   :func:`leandl.measure.compare_latency`: ``warmup`` untimed calls each first (the first one
   absorbs compilation), then ``repeats // 2`` interleaved rounds of one warm-up and two timed
   calls per backend; median and p90 in ms over the timed calls, throughput = batch / median
   (samples/s). Interleaving keeps the ratios between backends meaningful on a machine whose
   speed drifts.

Rows (one per backend x batch size x threads) have the keys of :data:`ROW_KEYS`.

A timing whose p90 exceeds :data:`NOISE_LIMIT` (1.5) times its median is flagged
``noisy = True`` (with ``p90_over_median``): on a shared machine something else took the cores
during part of the run, and the median is less trustworthy than usual; rerun it, or compare
only ratios from the same interleaved rounds (docs/measurement.md). :func:`format_rows`
marks such rows ``NOISY`` in the terminal table.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leandl.deploy.backend import BackendUnavailable, BuiltBackend
from leandl.deploy.io import call_model
from leandl.deploy.onnx_export import compare_outputs
from leandl.measure import compare_latency, measure_latency
from leandl.measure._util import rebatch
from leandl.registry import BACKENDS

__all__ = ["bench_backends", "build_backends", "time_backends", "ROW_KEYS", "format_rows", "NOISE_LIMIT", "noise_fields", "summarize_times"]

ROW_KEYS = ("backend", "batch_size", "threads", "status", "latency_ms", "p90_ms", "throughput", "size_bytes",
            "max_abs_diff", "top1_agreement", "noisy", "p90_over_median", "note")
NOISE_LIMIT = 1.5


def noise_fields(median_ms: float, p90_ms: float, limit: float = NOISE_LIMIT) -> dict[str, Any]:
    """``{"noisy": p90 > limit x median, "p90_over_median": p90 / median}`` of one timing."""
    ratio = p90_ms / median_ms if median_ms > 0 else float("inf")
    return {"noisy": bool(ratio > limit), "p90_over_median": ratio}


def summarize_times(times_ms: Sequence[float], batch_size: int = 1, limit: float = NOISE_LIMIT) -> dict[str, Any]:
    """Median, p90 (ms), throughput (samples/s) and the noise flag of raw per-call timings.

    Args:
        times_ms: wall time of each timed call (ms), >= 1 value.
        batch_size: samples per call.
        limit: p90 / median above which the timing is ``noisy``.
    """
    import statistics

    from leandl.measure.latency import percentile

    if not times_ms:
        raise ValueError("summarize_times needs at least one timing")
    median = statistics.median(times_ms)
    p90 = percentile(list(times_ms), 90.0)
    return {"latency_ms": median, "p90_ms": p90,
            "throughput": batch_size / (median / 1000.0) if median > 0 else float("inf"),
            **noise_fields(median, p90, limit)}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"failed: {type(exc).__name__}: {text}"[:300]


def _row(name: str, bs: int, threads: int | None, status: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    row.update(backend=name, batch_size=bs, threads=threads, status=status, **values)
    return row


def _check(built: BuiltBackend, reference: Any, check_inputs: Any, threads: int | None) -> dict[str, float]:
    with torch.inference_mode():
        out = call_model(built.runner(threads), check_inputs)
    res = compare_outputs(reference, out)
    return {"max_abs_diff": res.max_abs_diff, "top1_agreement": res.top1_agreement}


def time_backends(built: dict[str, BuiltBackend], check_inputs: Any, batch_sizes: Sequence[int],
              threads: Sequence[int], warmup: int, repeats: int) -> dict[tuple[str, int, int], Any]:
    """Per (backend, batch, threads): LatencyStats, or a failure reason (str).

    For each thread count and batch size the backends that run are timed together in
    interleaved rounds (one warm-up call and two timed calls each per round), so a drift of the
    machine moves all of them alike and their ratios stay meaningful.
    """
    out: dict[tuple[str, int, int], Any] = {}
    for t in threads:
        runners = {}
        for name, b in built.items():
            try:
                runners[name] = b.runner(t)
            except Exception as exc:  # a session that cannot open is a failed row, not a crash
                out.update({(name, bs, t): _reason(exc) for bs in batch_sizes})
        for bs in batch_sizes:
            # one positional argument holding the whole input structure, unpacked by call_model
            # the same way for every backend (positional, keyword, or both)
            x = (rebatch(check_inputs, bs),)
            ok = {}
            for name, raw in runners.items():
                def run(inputs: Any, _run: Any = raw) -> Any:
                    return call_model(_run, inputs)
                try:
                    measure_latency(run, x, warmup=max(1, warmup), repeats=1, threads=t)
                    ok[name] = run
                except Exception as exc:  # e.g. a runtime that rejects this batch size
                    out[(name, bs, t)] = _reason(exc)
            if ok:
                res = compare_latency(ok, x, rounds=max(1, repeats // 2), warmup=1, repeats=2,
                                      threads=t)
                out.update({(name, bs, t): res.stats[name] for name in ok})
    return out


def build_backends(model: nn.Module, backends: Sequence[str], example_inputs: Any, calibration: Sequence[Any],
                   root: Path) -> tuple[dict[str, BuiltBackend], dict[str, str]]:
    """Build each named backend for ``model`` under ``root / name`` (a backend that runs another's
    artifact, :attr:`Backend.reuses`, gets the file that one built when it was built first).

    Returns:
        ``(built, not_built)``: the built backends by name, and for the others the row status
        ``"skipped: <reason>"`` (:meth:`Backend.unavailable` or :class:`BackendUnavailable`:
        cannot run here at all) or ``"failed: <Type>: <message>"`` (the build raised).
    """
    built: dict[str, BuiltBackend] = {}
    failed: dict[str, str] = {}
    for name in backends:
        try:
            cls = BACKENDS.get(name)
            why = cls.unavailable()
            if why:
                raise BackendUnavailable(why)
            source = built.get(cls.reuses) if cls.reuses else None
            if source is not None and source.artifact is not None:  # the same file, built once
                built[name] = cls().from_artifact(source.artifact, source.notes)
            else:
                built[name] = cls().build(model, example_inputs, calibration, Path(root) / name)
        except BackendUnavailable as exc:  # cannot run here at all: skipped, with the reason
            failed[name] = f"skipped: {str(exc).strip() or type(exc).__name__}"[:300]
        except Exception as exc:  # a problem of this model on this backend
            failed[name] = _reason(exc)
    return built, failed


def bench_backends(
    model: nn.Module,
    backends: Sequence[str],
    check_inputs: Any,
    *,
    batch_sizes: Sequence[int] = (1, 64),
    threads: Sequence[int | None] = (None,),
    calibration: Sequence[Any] = (),
    warmup: int = 3,
    repeats: int = 40,
    workdir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Build, check and time ``model`` on each backend.

    Args:
        model: the fp32 model (not modified).
        backends: names in :data:`leandl.registry.BACKENDS` (an unknown name is a failed row).
        check_inputs: input batch used for the output check and, re-batched, for timing: a
            tensor, a tuple of positional inputs or a dict of keyword inputs, any dtype (token
            ids, masks; :mod:`leandl.deploy.io`).
        batch_sizes: batch sizes to time.
        threads: intra-op thread counts (``None`` = current setting).
        calibration: input batches for backends that calibrate (static int8).
        warmup, repeats: untimed / timed calls per measurement.
        workdir: where artifacts go (a temporary folder by default).

    Returns:
        Rows with the keys of :data:`ROW_KEYS`.
    """
    # every row states its thread count: None means the current setting, recorded as a number
    threads = [t if t is not None else torch.get_num_threads() for t in threads]
    model = copy.deepcopy(model).cpu().eval()
    with torch.inference_mode():
        reference = call_model(model, check_inputs)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        built, failed = build_backends(model, backends, check_inputs, calibration, root)
        bases: dict[str, dict[str, Any]] = {}
        for name in list(built):
            try:
                bases[name] = {"size_bytes": built[name].size_bytes, "note": built[name].notes or None}
                bases[name].update(_check(built[name], reference, check_inputs, threads[0]))
            except Exception as exc:  # the check failed: report it for every row
                failed[name] = _reason(exc)
                built.pop(name)
        timed = time_backends(built, check_inputs, batch_sizes, threads, warmup, repeats)
        for name in backends:
            for t in threads:
                for bs in batch_sizes:
                    if name in failed:
                        rows.append(_row(name, bs, t, failed[name]))
                        continue
                    got = timed[(name, bs, t)]
                    if isinstance(got, str):
                        rows.append(_row(name, bs, t, got, **bases[name]))
                    else:
                        rows.append(_row(name, bs, t, "ok", latency_ms=got.median_ms, p90_ms=got.p90_ms,
                                         throughput=got.throughput_per_s, **noise_fields(got.median_ms, got.p90_ms),
                                         **bases[name]))
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of bench rows (units in the header); noisy timings are marked
    ``NOISY (p90 = R x median)`` and explained under the table."""

    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    from leandl.measure import cpu_description

    head = (f"{'backend':<26} {'batch':>5} {'thr':>3} {'median ms':>10} {'p90 ms':>9} {'samples/s':>10} "
            f"{'size MB':>8} {'max|diff|':>9} {'top1':>6}  status")
    lines = [f"CPU: {cpu_description()}", head]
    for r in rows:
        size = None if r["size_bytes"] is None else r["size_bytes"] / 1e6
        lines.append(f"{r['backend']:<26} {r['batch_size']:>5} {str(r['threads'] or '-'):>3} "
                     f"{f(r['latency_ms'], '.3f'):>10} {f(r['p90_ms'], '.3f'):>9} {f(r['throughput'], '.1f'):>10} "
                     f"{f(size, '.3f'):>8} {f(r['max_abs_diff'], '.2e'):>9} {f(r['top1_agreement'], '.3f'):>6}  "
                     f"{r['status']}{_noise_mark(r)}")
    if any(r.get("noisy") for r in rows):
        lines.append(f"NOISY: p90 > {NOISE_LIMIT:g} x median; the machine was busy during that timing, so its "
                     "median is unreliable: rerun, or compare ratios measured in the same rounds.")
    return "\n".join(lines)


def _noise_mark(row: dict[str, Any]) -> str:
    if not row.get("noisy"):
        return ""
    ratio = row.get("p90_over_median")
    return f", NOISY (p90 = {ratio:.1f}x median)" if isinstance(ratio, float) else ", NOISY"
