"""Property-based fuzzing (issue 9): loaders accept or raise leandl's own error, nothing else."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leandl.errors import LeandlError
from leandl.recipes.loader import load_recipe
from leandl.recipes.schema import Recipe
from tests_helpers import fast_recipe

SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
KEYS = ["name", "model", "data", "defaults", "stages", "measure", "seed", "device", "kind", "epochs", "lr",
        "batch_size", "techniques", "smoothing", "noise", "rate", "type", "checkpoint", "kwargs", "options",
        "optimizer", "schedule", "0", "1", "x"]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value):
    if not path:
        return value
    node = obj
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return obj


BASE = fast_recipe(stages=[{"kind": "train", "techniques": [{"name": "label_smoothing", "smoothing": 0.1}]}])
BASE_PATHS = list(_paths(BASE))


@st.composite
def mutated_recipes(draw):
    recipe = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(recipe))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "add_key", "delete"]))
        if action == "replace":
            recipe = _set(recipe, path, draw(json_values))
        elif action == "add_key":
            node = recipe
            for p in path:
                node = node[p]
            if isinstance(node, dict):
                node[draw(st.sampled_from(KEYS))] = draw(json_values)
        elif path:
            parent = recipe
            for p in path[:-1]:
                parent = parent[p]
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, list) and parent:
                parent.pop(path[-1])
        if not isinstance(recipe, dict):
            break
    return recipe


@SETTINGS
@given(mutated_recipes())
def test_recipe_loader_only_raises_leandl_errors(recipe):
    try:
        result = load_recipe(recipe)
    except LeandlError as exc:
        assert str(exc)  # one paragraph for the user
    else:
        assert isinstance(result, Recipe)


override_paths = st.lists(st.sampled_from(KEYS), min_size=0, max_size=4).map(".".join)
override_values = st.one_of(st.text(max_size=10), json_values.map(lambda v: json.dumps(v)))
overrides = st.lists(st.one_of(st.builds(lambda p, v: f"{p}={v}", override_paths, override_values),
                               st.text(max_size=15)), max_size=3)


@SETTINGS
@given(overrides)
def test_set_overrides_only_raise_leandl_errors(items):
    try:
        result = load_recipe(copy.deepcopy(BASE), items)
    except LeandlError as exc:
        assert str(exc)
    else:
        assert isinstance(result, Recipe)


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    from leandl.checkpoint import save
    from leandl.models import create_model

    d = tmp_path_factory.mktemp("ck") / "ck"
    save(create_model("mlp", num_classes=3, input_shape=[4]), d)
    return d


META_KEYS = ["format", "format_version", "spec", "edits", "metrics", "extra", "weights_sha256", "name",
             "kwargs", "kind", "hidden", "num_classes", "input_shape"]


@SETTINGS
@given(data=st.data())
def test_checkpoint_metadata_only_raises_leandl_errors(checkpoint_dir, data, tmp_path_factory):
    from leandl.checkpoint import load

    meta = json.loads((checkpoint_dir / "leandl.json").read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(_paths(meta))[1:]))
        if data.draw(st.booleans()):
            meta = _set(meta, path, data.draw(json_values))
        else:
            node = meta
            for p in path[:-1]:
                node = node[p]
            if isinstance(node, dict):
                node[data.draw(st.sampled_from(META_KEYS))] = data.draw(json_values)
    work = tmp_path_factory.mktemp("fz")
    (work / "model.safetensors").write_bytes((checkpoint_dir / "model.safetensors").read_bytes())
    (work / "leandl.json").write_text(json.dumps(meta))
    try:
        model = load(work)
    except LeandlError as exc:
        assert str(exc)
    else:
        assert isinstance(model, torch.nn.Module)
