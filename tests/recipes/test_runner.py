from __future__ import annotations

import json

import pytest

import leandl
from leandl.errors import ConfigError, TrainingError, UsageError
from leandl.recipes.rundir import run_lock
from tests_helpers import fast_recipe


def test_run_writes_run_directory(tmp_path):
    out = tmp_path / "run"
    summary = leandl.run(fast_recipe(), out=out)
    for name in ("recipe.yaml", "metrics.jsonl", "summary.json", "stages/01-train/model/leandl.json",
                 "stages/01-train/summary.json"):
        assert (out / name).exists(), name
    st = summary["stages"][0]
    assert st["kind"] == "train" and st["name"] == "train"
    m = st["metrics"]
    for key in ("accuracy", "params", "macs", "size_bytes", "latency_ms", "train_seconds"):
        assert key in m, key
    assert 0.5 < m["accuracy"] <= 1.0 and set(m["latency_ms"]) == {"1"}
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["stages"][0]["metrics"]["accuracy"] == pytest.approx(m["accuracy"])
    events = [json.loads(line)["event"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events[0] == "run_start" and "epoch" in events and events[-1] == "run_end"


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    leandl.run(fast_recipe(defaults={"epochs": 1, "progress": False}), out=out)
    with pytest.raises(UsageError, match="--resume"):
        leandl.run(fast_recipe(), out=out)
    s = leandl.run(fast_recipe(), out=out, resume=True)  # completed stage is loaded, not retrained
    assert s["stages"][0]["metrics"]["epochs_run"] == 1


def test_second_concurrent_run_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with run_lock(out):
        with pytest.raises(TrainingError, match="another leandl run"):
            with run_lock(out):
                pass


def test_impossible_stage_order_rejected(tmp_path):
    from leandl.recipes.stage import Stage
    from leandl.registry import STAGES

    class NeedsTrained(Stage):
        kind = "needs_trained_test"
        needs_trained_model = True

    STAGES.register("needs_trained_test", NeedsTrained)
    with pytest.raises(ConfigError, match="needs a trained model"):
        leandl.run(fast_recipe(stages=[{"kind": "needs_trained_test"}, {"kind": "train"}]), out=tmp_path / "r")
