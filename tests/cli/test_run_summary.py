"""``leandl run`` prints per stage what it produced, the key number of that artifact (the int8
accuracy for a quantize stage), ratios to the first stage, the result and the report's path."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from leandl.cli import build_app
from tests_helpers import fast_recipe


@pytest.mark.slow
def test_run_prints_int8_accuracy_ratios_and_report_path(tmp_path) -> None:
    recipe = fast_recipe(stages=[
        {"kind": "train"},
        {"kind": "prune", "criterion": "l1", "target": {"macs": 0.5}},
        {"kind": "quantize", "method": "ptq", "calibration_batches": 2},
        {"kind": "bench", "backends": ["eager", "onnxruntime-int8"], "batch_sizes": [1], "repeats": 4, "warmup": 1},
    ])
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    res = CliRunner().invoke(build_app(), ["run", str(path), "--out", str(out)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    quant = summary["stages"][2]["metrics"]
    # the result line reports the int8 model's accuracy, not the bench stage's fp32 one
    assert summary["result"] == {"stage": "03-quantize", "artifact": "int8 ONNX model",
                                 "accuracy": quant["accuracy"]}
    assert f"test accuracy: {quant['accuracy'] * 100:.2f} % (int8 ONNX model of 03-quantize)" in res.output
    assert f"int8 {quant['accuracy'] * 100:.2f} %" in res.output
    ratio = summary["outline"][1]["ratios"]["macs"]
    assert abs(ratio - 0.5) < 0.03 and f"({ratio:.2f}x)" in res.output
    assert summary["outline"][2]["ratios"]["size"] < 0.5  # int8 file vs fp32 weights
    assert f"report: {out / 'report.html'}" in res.output and (out / "report.html").is_file()
    assert re.search(r"onnxruntime-int8\s+1\s+\d", res.output)  # the bench table is printed


@pytest.mark.slow
def test_single_stage_run_prints_accuracy_and_report(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(fast_recipe()))
    res = CliRunner().invoke(build_app(), ["run", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    acc = json.loads((tmp_path / "run" / "summary.json").read_text())["stages"][0]["metrics"]["accuracy"]
    assert f"test accuracy: {acc * 100:.2f} % (torch model of 01-train)" in res.output
    assert "report: " in res.output and "report.html" in res.output
