"""The ``deploy`` recipe stage: held-out test split + labels, calibration from the training split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from leandl.errors import ConfigError  # noqa: E402
from leandl.recipes.runner import run  # noqa: E402
from tests_helpers import fast_recipe  # noqa: E402


def test_deploy_stage_writes_deploy_json_and_the_chosen_file(tmp_path: Path) -> None:
    recipe = fast_recipe(stages=[
        {"kind": "train", "epochs": 1},
        {"kind": "deploy", "backends": ["eager", "onnxruntime", "onnxruntime-int8"], "batch_sizes": [1, 8],
         "threads": [1], "warmup": 1, "repeats": 2, "calibration_batches": 2, "check_batch_size": 128},
    ])
    summary = run(recipe, out=tmp_path / "run")
    m = summary["stages"][1]["metrics"]
    stage_dir = tmp_path / "run" / "stages" / summary["stages"][1]["dir"]
    doc = json.loads((stage_dir / "deploy.json").read_text())
    assert m["deploy_backend"] == doc["backend"] in {"eager", "onnxruntime", "onnxruntime-int8"}
    assert doc["inputs"].startswith("data digits (test split, 128 samples)")
    assert doc["calibration"] == "data digits (training split, 2 batches)"
    assert doc["tolerance"] == {"max_accuracy_drop": 0.01}
    assert [(b["batch_size"], b["threads"]) for b in m["deploy_best"]] == [(1, 1), (8, 1)]
    assert all(r["accuracy"] is not None for r in m["deploy"])
    if doc["backend"].startswith("onnxruntime"):
        assert (stage_dir / doc["artifact"]).is_file()
    else:
        assert doc["artifact"] == str(stage_dir / "model")


def test_deploy_stage_rejects_unknown_backend(tmp_path: Path) -> None:
    recipe = fast_recipe(stages=[{"kind": "train", "epochs": 1}, {"kind": "deploy", "backends": ["onnxruntim"]}])
    with pytest.raises(ConfigError, match="unknown backend 'onnxruntim'"):
        run(recipe, out=tmp_path / "run")
