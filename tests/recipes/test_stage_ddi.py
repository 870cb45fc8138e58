from __future__ import annotations

import pytest

import leandl
from leandl.checkpoint import load, read_meta
from leandl.dynamic.ddi_gates import gated_blocks
from tests_helpers import fast_recipe


def _recipe(**ddi):
    return fast_recipe(model={"name": "mnist1d_cnn", "kwargs": {"width": 8, "blocks": 2}},
                       data={"name": "mnist1d", "batch_size": 64, "options": {"num_samples": 400}},
                       stages=[{"kind": "train", "epochs": 1},
                               {"kind": "ddi", "epochs": 1, "budget": 0.6, "timing_rounds": 1, **ddi}],
                       measure={"latency": False, "energy": False})


def test_ddi_stage_meets_the_budget_and_reloads(tmp_path):
    summary = leandl.run(_recipe(), out=tmp_path / "r")
    m = summary["stages"][1]["metrics"]
    assert m["val_macs_fraction"] <= 0.6
    assert 0 < m["macs_fraction"] < 0.8 and m["macs"] == pytest.approx(m["macs_fraction"] * m["full_macs"])
    assert set(m["block_run_share"]) == {"stem.1", "layer1.1", "layer2.1"}
    assert m["wall_clock"]["gated_ms"] > 0
    assert any(e["kind"] == "ddi_gates" for e in read_meta(tmp_path / "r/stages/02-ddi/model")["edits"])
    model = load(tmp_path / "r" / "stages" / "02-ddi" / "model")
    assert len(gated_blocks(model)) == 3


def test_ddi_stage_refuses_bad_fractions(tmp_path):
    with pytest.raises(Exception, match="fractions"):
        leandl.run(_recipe(fractions=[0.5, 1.0]), out=tmp_path / "r")


def test_builtin_ddi_recipe_loads():
    from leandl.recipes.loader import load_recipe

    rec = load_recipe("mnist1d-ddi")
    assert [s.kind for s in rec.stages] == ["train", "ddi"]
