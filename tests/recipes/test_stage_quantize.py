"""The quantize, export and bench stages in one tiny run (train 3 epochs on digits first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from leandl.deploy import ROW_KEYS
from leandl.errors import ConfigError
from leandl.recipes.runner import run
from tests_helpers import fast_recipe


def test_quantize_export_bench_stages(tmp_path: Path) -> None:
    recipe = fast_recipe(stages=[
        {"kind": "train", "epochs": 3},
        {"kind": "quantize", "method": "ptq", "calibration_batches": 2, "calibrate_method": "percentile"},
        {"kind": "export", "int8": True, "calibration_batches": 2},
        {"kind": "bench", "backends": ["eager", "onnxruntime-int8", "onnxruntime-dynamic-int8"],
         "batch_sizes": [1], "threads": [1], "warmup": 1, "repeats": 2, "calibration_batches": 2},
    ])
    summary = run(recipe, out=tmp_path / "run")
    train, quant, export, bench = (s["metrics"] for s in summary["stages"])
    # accuracy / size / latency of the int8 ONNX model, set by the stage itself
    assert quant["accuracy"] >= quant["fp32_accuracy"] - 0.03
    assert quant["size_bytes"] == quant["int8_onnx_size_bytes"] < quant["fp32_onnx_size_bytes"]
    assert quant["size_ratio"] == pytest.approx(quant["fp32_onnx_size_bytes"] / quant["int8_onnx_size_bytes"])
    assert set(quant["latency_ms"]) == {"1"}
    assert quant["quantization"]["bias_correction"] is True
    stage_dir = tmp_path / "run" / "stages" / summary["stages"][1]["dir"]
    info = json.loads((stage_dir / "summary.json").read_text())
    assert Path(info["artifacts"]["int8_onnx"]).is_file()
    assert Path(info["artifacts"]["int8_onnx"]).resolve().is_relative_to(stage_dir.resolve())
    # the model handed on stays the torch fp32 model: the checkpoint equals the trained one
    from leandl.checkpoint import load

    a, b = load(tmp_path / "run" / "stages" / summary["stages"][0]["dir"] / "model"), load(stage_dir / "model")
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(a(x), b(x))
    assert export["onnx_max_abs_diff"] < 1e-4 and export["int8_onnx_size_bytes"] < export["onnx_size_bytes"]
    rows = bench["bench"]
    assert len(rows) == 3 and all(set(ROW_KEYS) <= set(r) for r in rows)
    assert all(r["status"] == "ok" for r in rows), rows


def test_bench_stage_rejects_unknown_backend(tmp_path: Path) -> None:
    recipe = fast_recipe(stages=[{"kind": "train", "epochs": 1}, {"kind": "bench", "backends": ["onnxruntim"]}])
    with pytest.raises(ConfigError, match="unknown backend 'onnxruntim'"):
        run(recipe, out=tmp_path / "run")


def test_export_stage_int8_of_a_qat_model_quantises_its_float_twin(tmp_path: Path) -> None:
    recipe = fast_recipe(stages=[
        {"kind": "train", "epochs": 4},
        {"kind": "train", "name": "qat", "epochs": 2, "techniques": [{"name": "qat", "weight_bits": 4, "act_bits": 4}]},
        {"kind": "export", "int8": True, "calibration_batches": 2},
    ])
    summary = run(recipe, out=tmp_path / "run")
    export = summary["stages"][2]["metrics"]
    stage_dir = tmp_path / "run" / "stages" / summary["stages"][2]["dir"]
    assert (stage_dir / "float_twin.onnx").is_file()  # the int8 file was quantised from the twin
    # the fp32 file traces the fake-quant ops with float weights; the int8 file holds int8 weights
    assert export["int8_onnx_size_bytes"] * 2 < export["onnx_size_bytes"]
    assert export["int8_top1_agreement"] >= 0.95
