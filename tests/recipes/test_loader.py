from __future__ import annotations

import pytest

from leandl.errors import ConfigError, UsageError
from leandl.recipes.loader import apply_overrides, builtin_recipes, load_recipe, recipe_to_dict
from tests_helpers import fast_recipe


def test_builtin_recipes_listed_with_descriptions():
    names = builtin_recipes()
    assert "digits-baseline" in names and names["digits-baseline"]
    assert load_recipe("digits-baseline").model.name == "digits_cnn"


def test_misspelt_key_suggests_closest():
    bad = fast_recipe(defaults={"epochz": 3})
    with pytest.raises(ConfigError, match=r"defaults.epochz.*did you mean 'epochs'"):
        load_recipe(bad)


def test_stage_option_and_technique_checked():
    bad = fast_recipe(stages=[{"kind": "train", "lr": "fast"}])
    with pytest.raises(ConfigError, match=r"stages\[0\].lr"):
        load_recipe(bad)
    bad = fast_recipe(stages=[{"kind": "train", "techniques": [{"name": "label_smothing"}]}])
    with pytest.raises(ConfigError, match="did you mean 'label_smoothing'"):
        load_recipe(bad)
    bad = fast_recipe(stages=[{"kind": "train", "techniques": [{"name": "label_smoothing", "smothing": 0.1}]}])
    with pytest.raises(ConfigError, match="did you mean 'smoothing'"):
        load_recipe(bad)
    bad = fast_recipe(stages=[{"kind": "trian"}])
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        load_recipe(bad)


def test_out_of_range_values_rejected():
    with pytest.raises(ConfigError, match=r"defaults.lr"):
        load_recipe(fast_recipe(defaults={"lr": -0.1}))
    # a value the type allows but the technique refuses fails at load, before any stage runs
    bad = fast_recipe(stages=[{"kind": "train"}, {"kind": "train", "techniques": [
        {"name": "label_smoothing", "smoothing": 7}]}])
    with pytest.raises(ConfigError, match=r"stages\[1\].techniques\[0\] \(label_smoothing\).*"
                                          r"smoothing must be in \[0, 1\], got 7"):
        load_recipe(bad)


def test_overrides_apply_and_check_paths():
    r = load_recipe(fast_recipe(), ["defaults.lr=0.01", "stages.0.epochs=1", "data.batch_size=16"])
    assert r.defaults.lr == 0.01 and r.data.batch_size == 16
    assert recipe_to_dict(r)["stages"][0]["epochs"] == 1
    with pytest.raises(UsageError, match="no field 'lrr'; did you mean 'lr'"):
        load_recipe(fast_recipe(), ["defaults.lrr=0.01"])
    with pytest.raises(UsageError, match="not an index"):
        apply_overrides({"stages": [{}]}, ["stages.3.epochs=1"])
    with pytest.raises(ConfigError, match="defaults.lr"):
        load_recipe(fast_recipe(), ["defaults.lr=abc"])


def test_override_may_add_a_technique_parameter_the_entry_left_out():
    rec = fast_recipe(stages=[{"kind": "train", "techniques": [{"name": "label_smoothing"}]}])
    r = load_recipe(rec, ["stages.0.techniques.0.smoothing=0.2"])
    assert recipe_to_dict(r)["stages"][0]["techniques"][0] == {"name": "label_smoothing", "smoothing": 0.2}
    # checked like a value written in the recipe: the technique's signature and its own bounds
    with pytest.raises(ConfigError, match=r"label_smoothing.*smoothing must be in \[0, 1\], got 7"):
        load_recipe(rec, ["stages.0.techniques.0.smoothing=7"])
    with pytest.raises(ConfigError, match="smoothin"):
        load_recipe(rec, ["stages.0.techniques.0.smoothin=0.2"])
    # only the entry's own parameters: a stage still refuses a key it does not have
    with pytest.raises(UsageError, match="no field 'epochz'"):
        load_recipe(rec, ["stages.0.epochz=1"])


def test_unknown_recipe_name():
    with pytest.raises(UsageError, match="did you mean 'digits-baseline'"):
        load_recipe("digits-baselin")
