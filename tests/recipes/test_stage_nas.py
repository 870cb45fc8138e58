from __future__ import annotations

import pytest

import leandl
from leandl.checkpoint import load, read_meta
from leandl.nas.derive import CellNet
from tests_helpers import fast_recipe


def _recipe(**nas):
    return fast_recipe(model={"name": "mnist1d_cnn", "kwargs": {"width": 8}},
                       data={"name": "mnist1d", "batch_size": 64, "options": {"num_samples": 300}},
                       stages=[{"kind": "train", "epochs": 1},
                               {"kind": "nas", "epochs": 1, "search_epochs": 1, "search_width": 4,
                                "ops": ["none", "skip", "conv_3", "sep_conv_3"], **nas}],
                       measure={"latency": False, "energy": False})


@pytest.mark.parametrize("kd", [False, True])
def test_nas_stage_searches_within_the_incoming_models_macs_and_reloads(tmp_path, kd):
    summary = leandl.run(_recipe(kd=kd), out=tmp_path / "r")
    m = summary["stages"][1]["metrics"]
    assert m["searched_macs"] <= m["max_macs"]
    assert m["max_macs"] == summary["stages"][0]["metrics"]["macs"]
    assert m["search_seconds"] > 0 and m["genotype"]["nodes"] == 2
    meta = read_meta(tmp_path / "r" / "stages" / "02-nas" / "model")
    assert meta["spec"]["name"] == "nas_cellnet" and meta["spec"]["kwargs"]["genotype"] == m["genotype"]
    assert isinstance(load(tmp_path / "r" / "stages" / "02-nas" / "model"), CellNet)


def test_nas_stage_names_a_bad_op(tmp_path):
    with pytest.raises(Exception, match="conv_9"):
        leandl.run(_recipe(ops=["skip", "conv_9"]), out=tmp_path / "r")


def test_builtin_nas_recipe_loads():
    from leandl.recipes.loader import load_recipe

    rec = load_recipe("mnist1d-nas")
    assert [s.kind for s in rec.stages] == ["train", "nas"]
