"""Teachers obey the trust rules of models (issue 18): hostile specs never reach code, files or hubs."""

from __future__ import annotations

import json

import pytest

import leandl.models.factory as factory
from leandl.checkpoint import save
from leandl.distill.teachers import load_teacher
from leandl.errors import CheckpointError, ConfigError, LeandlError, ModelError
from leandl.models import create_model
from leandl.recipes.runner import run


@pytest.fixture
def library_calls(monkeypatch):
    """Every call that would reach torchvision / timm / transformers, recorded instead of made."""
    called = []
    for prefix in ("torchvision", "timm", "hf"):
        monkeypatch.setitem(factory._ADAPTER_FUNCS, prefix,
                            lambda arch, kwargs, trust, p=prefix: called.append((p, arch, kwargs, trust))
                            or create_model("mlp", num_classes=10, input_shape=[1, 8, 8]))
    return called


def _hostile_checkpoint(tmp_path, spec):
    ck = tmp_path / "teacher"
    save(create_model("mlp", num_classes=10, input_shape=[1, 8, 8]), ck)
    meta = json.loads((ck / "leandl.json").read_text())
    meta["spec"] = spec
    (ck / "leandl.json").write_text(json.dumps(meta))
    return ck


@pytest.mark.parametrize("form", ["string", "mapping"])
def test_checkpoint_teacher_naming_code_is_refused_and_never_runs(tmp_path, form):
    marker = tmp_path / "pwned"
    ck = _hostile_checkpoint(tmp_path, {"name": "os:system", "kwargs": {"command": f"touch {marker}"}})
    with pytest.raises(CheckpointError, match="outside leandl's registry"):
        load_teacher(str(ck) if form == "string" else {"checkpoint": str(ck)})
    assert not marker.exists()


@pytest.mark.parametrize("spec", [
    {"name": "timm:resnet18", "kwargs": {"checkpoint_path": "/tmp/evil.pth"}},
    {"name": "timm:hf-hub:someone/evil", "kwargs": {}},
    {"name": "torchvision:resnet18", "kwargs": {"weights": "DEFAULT"}},
    {"name": "hf:BertModel", "kwargs": {"config": {"auto_map": {"AutoModel": "evil.Model"}}}},
])
def test_checkpoint_teacher_with_library_paths_or_hub_names_needs_trust(tmp_path, spec, library_calls):
    ck = _hostile_checkpoint(tmp_path, spec)
    with pytest.raises(CheckpointError, match="trust"):
        load_teacher({"checkpoint": str(ck)})
    assert library_calls == []


@pytest.mark.parametrize(("spec", "error", "match"), [
    ({"model": "os:system", "kwargs": {"command": "true"}}, ConfigError, "import path"),
    ({"factory": "os:system", "kwargs": {"command": "true"}}, ConfigError, "trust: true"),
    ({"model": "timm:resnet18", "kwargs": {"checkpoint_path": "/tmp/evil.pth"}}, ModelError, "checkpoint_path"),
    ({"model": "timm:resnet18", "kwargs": {"pretrained": True}}, ModelError, "pretrained"),
    ({"model": "timm:hf-hub:someone/evil"}, ModelError, "hf-hub"),
    ({"model": "torchvision:resnet18", "kwargs": {"weights": "IMAGENET1K_V1"}}, ModelError, "weights"),
    ({"model": "hf:BertModel", "kwargs": {"config": {"trust_remote_code": True}}}, ModelError, "trust_remote_code"),
    ({"model": "mlp", "trust": "false"}, ConfigError, "trust must be true or false"),
    ({"model": "timm:resnet18", "kwargs": {"pretrained": True}, "trust": 1}, ConfigError, "trust must be"),
    ({"model": "mlp", "kwargs": ["x"]}, ConfigError, "kwargs must be a mapping"),
    ({"checkpoint": 7}, ConfigError, "non-empty string"),
])
def test_hostile_teacher_spec_is_refused_before_any_library_call(spec, error, match, library_calls):
    with pytest.raises(error, match=match):
        load_teacher(spec, num_classes=10, input_shape=[1, 8, 8])
    assert library_calls == []


def test_trust_true_is_handed_to_the_library(library_calls):
    load_teacher({"model": "timm:resnet18", "kwargs": {"pretrained": True}, "trust": True}, num_classes=10)
    assert library_calls and library_calls[0][:2] == ("timm", "resnet18") and library_calls[0][3] is True
    load_teacher({"model": "timm:resnet18"}, num_classes=10)  # an architecture alone needs no trust
    assert library_calls[1][3] is False


def test_distill_stage_with_a_hostile_teacher_stops_before_training(tmp_path, library_calls):
    marker = tmp_path / "pwned"
    ck = _hostile_checkpoint(tmp_path, {"name": "os:system", "kwargs": {"command": f"touch {marker}"}})
    recipe = {
        "name": "hostile-teacher", "seed": 0, "model": {"name": "mlp", "kwargs": {"hidden": [8]}},
        "data": {"name": "digits", "batch_size": 128},
        "defaults": {"epochs": 1, "optimizer": "adam", "lr": 0.003, "progress": False},
        "measure": {"batch_sizes": [1], "repeats": 1, "warmup": 0, "latency": False, "energy": False},
        "stages": [{"kind": "distill", "teachers": [{"model": "timm:resnet18", "kwargs": {"pretrained": True}}]}],
    }
    with pytest.raises(LeandlError, match="pretrained"):
        run(recipe, out=tmp_path / "run1")
    recipe["stages"] = [{"kind": "distill", "teacher": {"checkpoint": str(ck)}}]
    with pytest.raises(CheckpointError, match="outside leandl's registry"):
        run(recipe, out=tmp_path / "run2")
    assert not marker.exists() and library_calls == []
    assert not list((tmp_path / "run2").rglob("model.safetensors"))  # no stage finished


class _State:
    """The part of the trainer's state a TeacherSet uses: counters saved with the resume state."""

    def __init__(self, counters=None):
        self.counters = dict(counters or {})

    def count(self, name, amount):
        self.counters[name] = self.counters.get(name, 0.0) + float(amount)


def _cached_set(teacher):
    from leandl.distill.teachers import TeacherSet

    ts = TeacherSet([teacher], cache=True)
    ts.models, ts.cache_on = [teacher.eval()], True
    ts._grow(8)
    return ts


def test_cache_counts_come_from_the_resumable_state():
    """A resumed process starts with empty in-memory tallies; the stage metrics must still count
    the whole run (they come from the state's counters, which the resume state restores)."""
    import torch

    teacher = create_model("mlp", num_classes=3, input_shape=[4])
    x, idx = torch.randn(8, 4), torch.arange(8)
    first = _cached_set(teacher)
    state = _State()
    first.logits(x, idx, state)  # computed
    first.logits(x, idx, state)  # served from the cache
    assert first.summary()["teacher_forward_samples"] == 8 and first.summary()["teacher_cache_hit_samples"] == 8
    resumed = _cached_set(teacher)  # a new process after a kill: tallies at 0, counters restored
    restored = _State(state.counters)
    resumed.logits(x, idx, restored)  # the cache is empty again here: computed once more
    assert resumed.summary()["teacher_forward_samples"] == 16
    assert resumed.summary()["teacher_cache_hit_samples"] == 8
    uncached = _cached_set(teacher)
    uncached.cache_on = False
    plain = _State()
    uncached.logits(x, None, plain)
    assert plain.counters["teacher_forward_samples"] == 8 == uncached.summary()["teacher_forward_samples"]


def test_summary_after_setup_reports_restored_counters_with_no_epoch_left():
    """Killed after the last epoch's resume state: the resumed process trains nothing, yet the
    stage metrics must carry the run's counts."""
    from types import SimpleNamespace

    import torch

    from leandl.distill.teachers import TeacherSet

    teacher = create_model("mlp", num_classes=3, input_shape=[4])
    ts = TeacherSet([teacher], cache=True)
    state = _State({"teacher_forward_samples": 1079.0, "teacher_cache_hits": 0.0})
    state.train_loader = SimpleNamespace(dataset=[(torch.zeros(4), 0)] * 8)
    state.device, state.num_classes = torch.device("cpu"), 3
    ts.setup(state, input_shape=[4])
    assert ts.summary()["teacher_forward_samples"] == 1079


@pytest.mark.parametrize("trust", [False, True])
def test_recipe_model_trust_is_handed_to_the_library(trust, library_calls):
    """The recipe's own model follows the same rule: library kwargs that download need model.trust."""
    from types import SimpleNamespace

    from leandl.recipes.runner import build_initial_model
    from leandl.recipes.schema import ModelConfig

    cfg = ModelConfig(name="timm:resnet18", kwargs={"pretrained": True}, trust=trust)
    recipe = SimpleNamespace(model=cfg, seed=0)
    data = SimpleNamespace(num_classes=10, input_shape=(1, 8, 8))
    if not trust:
        with pytest.raises(ModelError, match="pretrained"):
            build_initial_model(recipe, data)
        assert library_calls == []
    else:
        build_initial_model(recipe, data)
        assert library_calls[0][:2] == ("timm", "resnet18") and library_calls[0][3] is True
