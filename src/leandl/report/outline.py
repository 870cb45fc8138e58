"""What each stage of a run produced, its key number, and its cost relative to the first stage.

Used by the run summary (``summary.json``'s ``outline`` and ``result``), the terminal table of
``leandl run`` and the report. Plain data in, plain data out: no torch, no plotting.

A stage's *artifact* is what a user takes from it: the torch model for training-like stages, the
int8 ONNX file for ``quantize`` (its metrics describe the int8 model), the early-exit model run at
its selected budget for ``exits`` (its cost is the *expected* MACs, not the sum of every head), the
timing table for ``bench`` and the ONNX file(s) for ``export``. ``bench``, ``export``, ``deploy``
and ``compare`` of the previous model produce no new model, so the run's *result* is the last stage
that did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["ARTIFACTS", "NOISE_LIMIT", "effective_macs", "effective_latency", "key_metric", "noisy_latency",
           "stage_outline", "final_stage"]

NOISE_LIMIT = 1.5  # p90 / median above which a timing is flagged noisy (as leandl.deploy.bench)

ARTIFACTS = {"quantize": "int8 ONNX model", "exits": "early-exit model", "bench": "benchmark table",
             "export": "ONNX file", "deploy": "deployment choice"}
# stages that measure or convert the model they were given rather than produce a new one
_NO_NEW_MODEL = ("bench", "export", "deploy")


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def effective_macs(kind: str, metrics: dict[str, Any]) -> float | None:
    """MACs per sample of the stage's artifact: expected MACs for an exits stage."""
    if kind == "exits" and _num(metrics.get("expected_macs")) is not None:
        return _num(metrics["expected_macs"])
    return _num(metrics.get("macs"))


def effective_latency(kind: str, metrics: dict[str, Any], batch_size: str) -> float | None:
    """Median ms per batch of the stage's artifact; for exits, the full network's latency divided by
    the measured early-exit wall-clock speed-up at the selected budget."""
    lat = metrics.get("latency_ms") or {}
    value = _num(lat.get(batch_size)) if isinstance(lat, dict) else None
    if kind == "exits" and value is not None:
        speed = _num(metrics.get("wall_clock_speedup"))
        return value / speed if speed else value
    return value


def _bench_best(rows: Any) -> dict[str, Any] | None:
    ok = [r for r in rows or [] if isinstance(r, dict) and str(r.get("status", "")).startswith("ok")
          and _num(r.get("latency_ms")) is not None]
    if not ok:
        return None
    bs = max(int(r.get("batch_size") or 0) for r in ok)
    best = min((r for r in ok if int(r.get("batch_size") or 0) == bs), key=lambda r: r["latency_ms"])
    return {"backend": best.get("backend"), "batch_size": bs, "latency_ms": best["latency_ms"],
            "noisy": bool(best.get("noisy"))}


def key_metric(kind: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The one number that says what the stage's artifact is worth, with its unit."""
    if kind == "bench":
        best = _bench_best(metrics.get("bench"))
        if best:
            return {"name": f"fastest at b{best['batch_size']}: {best['backend']}", "value": best["latency_ms"],
                    "unit": "ms", "noisy": best["noisy"]}
    if kind == "exits" and _num(metrics.get("expected_macs")) is not None:
        return {"name": f"accuracy at {metrics.get('select_budget')} of the MACs", "value": _num(metrics.get("accuracy")),
                "unit": "fraction", "expected_macs": _num(metrics["expected_macs"]),
                "wall_clock_speedup": _num(metrics.get("wall_clock_speedup"))}
    if kind == "export":
        return {"name": "ONNX top-1 agreement with torch", "value": _num(metrics.get("onnx_top1_agreement")),
                "unit": "fraction"}
    if kind == "quantize":
        return {"name": "int8 test accuracy (ONNX Runtime)", "value": _num(metrics.get("accuracy")),
                "unit": "fraction", "fp32_accuracy": _num(metrics.get("fp32_accuracy"))}
    return {"name": "test accuracy", "value": _num(metrics.get("accuracy")), "unit": "fraction"}


def noisy_latency(metrics: dict[str, Any], limit: float = NOISE_LIMIT) -> dict[str, float]:
    """``{batch size: p90 / median}`` for each latency whose p90 exceeds ``limit`` x its median."""
    out: dict[str, float] = {}
    for bs, info in (metrics.get("latency") or {}).items():
        if isinstance(info, dict):
            med, p90 = _num(info.get("median_ms")), _num(info.get("p90_ms"))
            if med and p90 is not None and p90 > limit * med:
                out[str(bs)] = p90 / med
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def stage_outline(stages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage: ``artifact``, ``key`` (see :func:`key_metric`), ``macs`` (effective) and ``ratios``
    of size, MACs and latency (each measured batch size) to the first stage's."""
    out: list[dict[str, Any]] = []
    first = stages[0] if stages else None
    for s in stages:
        kind, m = s.get("kind", ""), s.get("metrics") or {}
        fk, fm = (first.get("kind", ""), first.get("metrics") or {}) if first else ("", {})
        ratios: dict[str, Any] = {
            "size": _ratio(_num(m.get("size_bytes")), _num(fm.get("size_bytes"))),
            "macs": _ratio(effective_macs(kind, m), effective_macs(fk, fm)),
        }
        for bs in (m.get("latency_ms") or {}):
            ratios[f"latency_b{bs}"] = _ratio(effective_latency(kind, m, bs), effective_latency(fk, fm, bs))
        out.append({"dir": s.get("dir"), "kind": kind, "artifact": ARTIFACTS.get(kind, "torch model"),
                    "key": key_metric(kind, m), "macs": effective_macs(kind, m), "ratios": ratios,
                    "noisy_latency": noisy_latency(m)})
    return out


def final_stage(stages: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The run's result: the last stage that produced a model, its artifact and test accuracy."""
    for s in reversed(stages):
        if s.get("kind") in _NO_NEW_MODEL:
            continue
        m = s.get("metrics") or {}
        return {"stage": s.get("dir"), "artifact": ARTIFACTS.get(s.get("kind", ""), "torch model"),
                "accuracy": _num(m.get("accuracy"))}
    return None
