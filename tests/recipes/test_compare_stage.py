from __future__ import annotations

import pytest

from leandl.errors import ConfigError
from leandl.recipes.loader import load_recipe
from leandl.recipes.runner import run


def test_compare_stage_with_noise(tmp_path, tiny_recipe):
    tiny_recipe["data"]["noise"] = {"type": "symmetric", "rate": 0.4, "seed": 0}
    tiny_recipe["defaults"]["epochs"] = 1
    tiny_recipe["stages"] = [{"kind": "compare", "variants": [
        {"name": "ce"}, {"name": "gce", "techniques": [{"name": "gce", "q": 0.7}]}]}]
    summary = run(tiny_recipe, tmp_path / "run")
    metrics = summary["stages"][0]["metrics"]
    rows = {r["variant"]: r for r in metrics["comparison"]}
    assert set(rows) == {"ce", "gce"} and metrics["kept"] in rows
    for r in rows.values():
        for key in ("clean_train_accuracy", "memorised", "corrected", "test_accuracy", "val_accuracy"):
            assert 0.0 <= r[key] <= 1.0
    assert metrics["gce/memorised"] == rows["gce"]["memorised"]
    assert (tmp_path / "run" / "stages").exists()


def test_compare_stage_validation(tmp_path, tiny_recipe):
    tiny_recipe["stages"] = [{"kind": "compare", "keep": "x", "variants": [{"name": "ce"}]}]
    with pytest.raises((ConfigError, ValueError)):
        run(tiny_recipe, tmp_path / "bad")


@pytest.mark.parametrize("name", ["digits-noisy", "mnist1d-noisy"])
def test_builtin_noisy_recipes_load(name):
    rec = load_recipe(name)
    assert rec.data.noise is not None and rec.data.noise.rate == 0.4
    assert rec.stages[0].kind == "compare"
