"""leandl.report.outline: each stage's artifact, key number and ratios to the first stage."""

from __future__ import annotations

from leandl.report.outline import effective_latency, final_stage, noisy_latency, stage_outline


def _stage(kind: str, d: str, **metrics) -> dict:
    return {"kind": kind, "dir": d, "name": kind, "metrics": metrics}


STAGES = [
    _stage("train", "01-train", accuracy=0.98, macs=2_000_000, size_bytes=80_000, latency_ms={"1": 0.4, "64": 4.0},
           latency={"1": {"median_ms": 0.4, "p90_ms": 0.5}, "64": {"median_ms": 4.0, "p90_ms": 8.0}}),
    _stage("prune", "02-prune", accuracy=0.97, macs=1_000_000, size_bytes=40_000, latency_ms={"1": 0.3, "64": 2.0}),
    _stage("quantize", "03-quantize", accuracy=0.975, fp32_accuracy=0.97, macs=1_000_000, size_bytes=12_000,
           latency_ms={"1": 0.1, "64": 1.0}),
    _stage("exits", "04-exits", accuracy=0.96, macs=2_200_000, expected_macs=1_050_000, select_budget=0.5,
           wall_clock_speedup=1.6, latency_ms={"1": 0.8, "64": 3.2}),
    _stage("bench", "05-bench", accuracy=0.97, bench=[
        {"backend": "eager", "batch_size": 64, "status": "ok", "latency_ms": 2.0, "noisy": False},
        {"backend": "onnxruntime-int8", "batch_size": 64, "status": "ok, NOISY", "latency_ms": 0.9, "noisy": True},
        {"backend": "onnxruntime-int8", "batch_size": 1, "status": "ok", "latency_ms": 0.05, "noisy": False},
        {"backend": "torchscript", "batch_size": 64, "status": "failed: x", "latency_ms": None}]),
]


def test_ratios_by_hand() -> None:
    out = stage_outline(STAGES)
    assert out[0]["ratios"] == {"size": 1.0, "macs": 1.0, "latency_b1": 1.0, "latency_b64": 1.0}
    assert out[1]["ratios"]["size"] == 0.5 and out[1]["ratios"]["macs"] == 0.5
    assert out[1]["ratios"]["latency_b64"] == 0.5
    assert out[2]["ratios"]["size"] == 12_000 / 80_000


def test_quantize_key_is_int8_accuracy_and_exits_use_expected_macs() -> None:
    out = stage_outline(STAGES)
    assert out[2]["artifact"] == "int8 ONNX model"
    assert out[2]["key"]["value"] == 0.975 and "int8" in out[2]["key"]["name"]
    assert out[3]["macs"] == 1_050_000  # expected MACs, not the 2.2 M of every head together
    assert out[3]["ratios"]["macs"] == 1_050_000 / 2_000_000
    assert effective_latency("exits", STAGES[3]["metrics"], "64") == 3.2 / 1.6
    assert out[4]["key"]["name"] == "fastest at b64: onnxruntime-int8" and out[4]["key"]["value"] == 0.9
    assert out[4]["key"]["noisy"] is True


def test_result_is_the_last_stage_that_made_a_model() -> None:
    assert final_stage(STAGES) == {"stage": "04-exits", "artifact": "early-exit model", "accuracy": 0.96}
    assert final_stage(STAGES[:3] + STAGES[4:]) == {"stage": "03-quantize", "artifact": "int8 ONNX model",
                                                     "accuracy": 0.975}


def test_noise_flag_at_p90_over_1_5_median() -> None:
    assert noisy_latency(STAGES[0]["metrics"]) == {"64": 2.0}
    assert stage_outline(STAGES)[0]["noisy_latency"] == {"64": 2.0}
    assert noisy_latency({"latency": {"1": {"median_ms": 1.0, "p90_ms": 1.5}}}) == {}
