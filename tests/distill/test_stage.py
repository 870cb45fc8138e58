"""The distill stage: teacher from an earlier stage, fresh student, cache reported."""

from __future__ import annotations

import json

import pytest

from leandl.errors import ConfigError
from leandl.recipes.runner import run


def _recipe(teacher: dict) -> dict:
    return {
        "name": "tiny-distill", "seed": 0, "model": {"name": "digits_cnn", "kwargs": {"width": 4}},
        "data": {"name": "digits", "batch_size": 128},
        "defaults": {"epochs": 1, "optimizer": "adam", "lr": 0.003, "progress": False},
        "measure": {"batch_sizes": [1], "repeats": 1, "warmup": 0, "latency": False, "energy": False},
        "stages": [{"kind": "train"},
                   {"kind": "distill", "teacher": teacher, "student": {"name": "mlp", "kwargs": {"hidden": [16]}},
                    "loss": "kd", "loss_kwargs": {"temperature": 2.0}, "epochs": 2}],
    }


def test_distill_stage_runs_with_teacher_from_stage(tmp_path) -> None:  # noqa: ANN001
    summary = run(_recipe({"stage": 0}), out=tmp_path / "run")
    st = summary["stages"][1]["metrics"]
    assert st["teacher_cache"] is True and st["teacher_cache_hit_samples"] > 0
    meta = json.loads((tmp_path / "run" / "stages" / "02-distill" / "model" / "leandl.json").read_text())
    assert meta["spec"]["name"] == "mlp"


def test_distill_stage_rejects_later_stage(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="does not come before"):
        run(_recipe({"stage": 1}), out=tmp_path / "run")
