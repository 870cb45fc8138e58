"""Bench: backends that cannot run here are skipped with a reason; noisy timings are flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from leandl.deploy import ROW_KEYS, Backend, BackendUnavailable, BuiltBackend, bench_backends, format_rows
from leandl.deploy.bench import NOISE_LIMIT, noise_fields, summarize_times
from leandl.registry import BACKENDS


@BACKENDS.register("test-unavailable")
class UnavailableBackend(Backend):
    """Says up front that it cannot run here."""

    name = "test-unavailable"

    @classmethod
    def unavailable(cls) -> str | None:
        return "frobnicator runtime not installed"

    def build(self, model, example_inputs, calibration, workdir: Path) -> BuiltBackend:
        raise AssertionError("never built")


@BACKENDS.register("test-gives-up")
class GivesUpBackend(Backend):
    """Finds out while building that it cannot run here."""

    name = "test-gives-up"

    def build(self, model, example_inputs, calibration, workdir: Path) -> BuiltBackend:
        raise BackendUnavailable("needs an accelerator this machine lacks")


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()


def test_unavailable_backends_are_skipped_with_the_reason() -> None:
    rows = bench_backends(_net(), ["eager", "test-unavailable", "test-gives-up", "onnxruntime-int8"],
                          torch.randn(4, 6), batch_sizes=(2,), threads=(1,), warmup=0, repeats=2)
    by = {r["backend"]: r for r in rows}
    assert by["eager"]["status"] == "ok"
    assert by["test-unavailable"]["status"] == "skipped: frobnicator runtime not installed"
    assert by["test-gives-up"]["status"] == "skipped: needs an accelerator this machine lacks"
    # static int8 without calibration batches: skipped, never calibrated silently on something else
    assert by["onnxruntime-int8"]["status"].startswith("skipped: static int8 needs calibration batches")
    assert all(set(ROW_KEYS) <= set(r) for r in rows)
    assert "skipped: frobnicator" in format_rows(rows)


def test_torchscript_on_a_torch_where_it_cannot_trace_is_skipped(monkeypatch) -> None:
    import leandl.deploy.backends_torch as bt

    def broken_trace(*args, **kwargs):
        raise RuntimeError("TorchScript was removed")

    monkeypatch.setattr(bt, "_PROBES", {})
    monkeypatch.setattr(torch.jit, "trace", broken_trace)
    rows = bench_backends(_net(), ["eager", "torchscript"], torch.randn(4, 6), batch_sizes=(2,), threads=(1,),
                          warmup=0, repeats=2)
    ts = next(r for r in rows if r["backend"] == "torchscript")
    assert ts["status"].startswith("skipped: TorchScript does not work on torch")
    assert "TorchScript was removed" in ts["status"]
    assert next(r for r in rows if r["backend"] == "eager")["status"] == "ok"


def test_torchscript_works_on_this_torch_and_takes_keyword_inputs() -> None:
    import leandl.deploy.backends_torch as bt

    if bt._probe_torchscript() is not None:
        pytest.skip(bt._probe_torchscript())

    class Kw(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(6, 3)

        def forward(self, x, ids):
            return {"logits": self.fc(x) + ids.float().mean(1, keepdim=True)}

    inputs = {"x": torch.randn(4, 6), "ids": torch.randint(0, 9, (4, 5))}
    rows = bench_backends(Kw().eval(), ["eager", "torchscript", "onnxruntime"], inputs, batch_sizes=(2,),
                          threads=(1,), warmup=0, repeats=2)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert all(r["max_abs_diff"] < 1e-5 for r in rows)


def test_noise_flag_from_fabricated_timings() -> None:
    steady = summarize_times([10.0] * 18 + [11.0, 12.0], batch_size=8)
    assert steady["latency_ms"] == 10.0 and steady["p90_ms"] <= 11.0 and steady["noisy"] is False
    assert steady["throughput"] == pytest.approx(800.0)
    spiky = summarize_times([10.0] * 16 + [25.0, 30.0, 40.0, 50.0], batch_size=8)
    assert spiky["latency_ms"] == 10.0 and spiky["p90_ms"] > NOISE_LIMIT * 10.0
    assert spiky["noisy"] is True and spiky["p90_over_median"] > 1.5
    assert noise_fields(10.0, 15.0)["noisy"] is False  # exactly 1.5x is not flagged
    assert noise_fields(10.0, 15.1)["noisy"] is True


def test_noisy_rows_are_marked_in_the_table_and_json() -> None:
    base = dict.fromkeys(ROW_KEYS)
    quiet = {**base, "backend": "eager", "batch_size": 1, "threads": 1, "status": "ok", "latency_ms": 1.0,
             "p90_ms": 1.1, **noise_fields(1.0, 1.1)}
    loud = {**quiet, "backend": "onnxruntime", "p90_ms": 3.0, **noise_fields(1.0, 3.0)}
    text = format_rows([quiet, loud])
    lines = text.splitlines()
    assert lines[0].startswith("CPU: ")  # the machine the timings belong to
    assert "NOISY" not in lines[2] and "NOISY (p90 = 3.0x median)" in lines[3]
    assert "p90 > 1.5 x median" in lines[-1]
    assert json.loads(json.dumps([loud]))[0]["noisy"] is True
    assert "NOISY" not in format_rows([quiet])


def test_real_rows_carry_the_noise_fields() -> None:
    rows = bench_backends(_net(), ["eager"], torch.randn(4, 6), batch_sizes=(2,), threads=(1,), warmup=0, repeats=4)
    r = rows[0]
    assert isinstance(r["noisy"], bool)
    assert r["p90_over_median"] == pytest.approx(r["p90_ms"] / r["latency_ms"])
    assert r["noisy"] == (r["p90_ms"] > NOISE_LIMIT * r["latency_ms"])
