from __future__ import annotations

import leandl
from leandl.checkpoint import load, read_meta
from tests_helpers import fast_recipe


def test_mixed_precision_stage_meets_budget_and_saves_bits(tmp_path):
    rec = fast_recipe(stages=[{"kind": "train", "epochs": 2},
                              {"kind": "mixed_precision", "budget": 0.25, "epochs": 1, "calibration_samples": 64}],
                      measure={"latency": False, "energy": False})
    summary = leandl.run(rec, out=tmp_path / "r")
    m = summary["stages"][1]["metrics"]
    assert m["mp_weight_bytes"] <= m["mp_budget_bytes"] + 1e-9
    assert abs(m["mp_budget_bytes"] - 0.25 * m["mp_reference_8bit_bytes"]) < 1e-6
    assert min(m["mp_bits"].values()) < 8
    ck = tmp_path / "r" / "stages" / "02-mixed_precision" / "model"
    edits = read_meta(ck)["edits"]
    assert any(e["kind"] == "qat_swap" for e in edits)
    model = load(ck)
    assert sum(1 for _ in model.modules()) > 0
